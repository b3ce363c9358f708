"""Zone maps: one row per pageblock of a zone, for the kernel (from /proc/kpageflags) and for the
model (from its state), drawn side by side by reports.figures.draw_zone_maps.

A map is a dict of equal-length lists (JSON-ready): `block` (pageblock number, pfn >> pageblock_order),
`kind` (the pageblock's migratetype; for the kernel, when the capture did not record its
pageblock types, what its pages hold, as kpageflags says), `free` (share of the block's pages free in the buddy
allocator), `hole` (every page of the block a hole or reserved) and `isolated` (MIGRATE_ISOLATE).
"""

from __future__ import annotations

import base64

import numpy as np

from kernels import constants as C
from kernels.zone import kernel_zone_index

from .captures import KPF_BUDDY, KPF_LRU, KPF_NOPAGE, KPF_RESERVED, KPF_SLAB

#: What the kernel's pages of a block hold (no pageblock type in a capture): the names a map uses.
FREE = "free"
LRU = "LRU pages (movable content)"
KERNEL = "kernel pages (unmovable content)"
SLAB = "slab (reclaimable or unmovable content)"
HOLE = "hole"


def _blocks(mask: np.ndarray, start: int, end: int, pageblock_order: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pageblock overlapping [start, end): (block numbers, pages of `mask` in the block within
    the span). mask is indexed by pfn."""
    pb = 1 << pageblock_order
    first, last = start >> pageblock_order, (end + pb - 1) >> pageblock_order
    padded = np.zeros((last - first) << pageblock_order, dtype=np.int64)
    padded[start - (first << pageblock_order):end - (first << pageblock_order)] = mask[start:end]
    return np.arange(first, last), padded.reshape(-1, pb).sum(axis=1)


def model_zone_map(node, zi: int | None = None) -> dict[str, list]:
    """The map of the model's zone `zi` (by default the one GFP_KERNEL prefers: the highest
    below ZONE_MOVABLE), from its page flags and pageblock types."""
    z = node[kernel_zone_index(node) if zi is None else zi]
    start, end = int(z.zp[C.ZP_ZONE_START]), int(z.zp[C.ZP_ZONE_END])
    pb_order = int(z.zp[C.ZP_PAGEBLOCK_ORDER])
    flags = np.asarray(z.page_flags[:end])
    heads = np.flatnonzero(flags & C.PG_BUDDY)
    tails = np.minimum(heads + (1 << np.asarray(z.page_order[heads], dtype=np.int64)), end)
    delta = np.zeros(end + 1, dtype=np.int64)
    np.add.at(delta, heads, 1)
    np.add.at(delta, tails, -1)
    free = np.cumsum(delta[:end]) > 0
    blocks, nfree = _blocks(free, start, end, pb_order)
    _, nhole = _blocks((flags & C.PG_RESERVED) != 0, start, end, pb_order)
    _, span = _blocks(np.ones(end, dtype=bool), start, end, pb_order)
    mt = np.asarray(z.pb_mt)[blocks]
    kinds = [C.MIGRATETYPE_NAMES[int(t)] for t in mt]
    return {"block": blocks.tolist(), "kind": kinds, "free": (nfree / (1 << pb_order)).tolist(),
            "hole": (nhole == span).tolist(), "isolated": (mt == C.MIGRATE_ISOLATE).tolist()}


def kernel_zone_map(kpageflags: np.ndarray, start: int, end: int, pageblock_order: int,
                    types: dict | None = None) -> dict[str, list]:
    """The map of the zone [start, end) from a /proc/kpageflags snapshot: each block's free share
    (KPF_BUDDY marks every page of a free buddy block) and its kind: the pageblock's migratetype
    where `types` (the zone of a pageblocktypes snapshot, captures.read_pageblocktypes) has it,
    else what most of its other pages are: LRU, slab or other kernel pages."""
    flags = np.zeros(end, dtype=np.uint64)
    n = min(end, len(kpageflags))
    flags[:n] = kpageflags[:n]

    def bit(b):
        return (flags >> np.uint64(b)) & np.uint64(1) != 0

    hole = bit(KPF_NOPAGE) | bit(KPF_RESERVED)
    hole[n:] = True
    free = bit(KPF_BUDDY) & ~hole
    lru = bit(KPF_LRU) & ~free & ~hole
    slab = bit(KPF_SLAB) & ~free & ~hole
    used = ~free & ~hole
    blocks, nfree = _blocks(free, start, end, pageblock_order)
    _, nhole = _blocks(hole, start, end, pageblock_order)
    _, nlru = _blocks(lru, start, end, pageblock_order)
    _, nslab = _blocks(slab, start, end, pageblock_order)
    _, nused = _blocks(used, start, end, pageblock_order)
    _, span = _blocks(np.ones(end, dtype=bool), start, end, pageblock_order)
    kinds = []
    for i in range(len(blocks)):
        if nhole[i] == span[i]:
            kinds.append(HOLE)
        elif nused[i] == 0:
            kinds.append(FREE)
        elif 2 * nlru[i] >= nused[i]:
            kinds.append(LRU)
        elif 2 * nslab[i] >= nused[i]:
            kinds.append(SLAB)
        else:
            kinds.append(KERNEL)
    isolated = [False] * len(blocks)
    if types is not None:
        recorded = dict(zip((types["pfn"] >> pageblock_order).tolist(), types["type"]))
        for i, b in enumerate(blocks.tolist()):
            if kinds[i] != HOLE and b in recorded:
                kinds[i] = recorded[b]
                isolated[i] = recorded[b] == "Isolate"
    return {"block": blocks.tolist(), "kind": kinds, "free": (nfree / (1 << pageblock_order)).tolist(),
            "hole": (nhole == span).tolist(), "isolated": isolated}


#: A sweep cell's result carries its zone map (encode_zone_map) when the zone has at most this
#: many pageblocks (16 GiB at pageblock_order 9): 2 bytes a block.
ZONE_MAP_MAX_BLOCKS = 8192
_HOLE_CODE = 255


def encode_zone_map(m: dict[str, list]) -> dict[str, object] | None:
    """A model map (model_zone_map) as two result fields: {'first_block', 'blocks': base64 of 2
    bytes per block, the migratetype (255: hole) and the free share in 255ths}. None above
    ZONE_MAP_MAX_BLOCKS."""
    n = len(m["block"])
    if n == 0 or n > ZONE_MAP_MAX_BLOCKS:
        return None
    codes = {name: i for i, name in enumerate(C.MIGRATETYPE_NAMES)}
    raw = np.zeros((n, 2), dtype=np.uint8)
    raw[:, 0] = [_HOLE_CODE if hole else codes[kind] for kind, hole in zip(m["kind"], m["hole"])]
    raw[:, 1] = np.rint(np.clip(np.asarray(m["free"], dtype=float), 0.0, 1.0) * 255)
    return {"first_block": int(m["block"][0]), "blocks": base64.b64encode(raw.tobytes()).decode()}


def decode_zone_map(first_block: int, blocks: str) -> dict[str, list]:
    """encode_zone_map's fields -> a map as model_zone_map returns it (free shares to 1/255)."""
    raw = np.frombuffer(base64.b64decode(blocks), dtype=np.uint8).reshape(-1, 2)
    hole = raw[:, 0] == _HOLE_CODE
    kinds = [HOLE if h else C.MIGRATETYPE_NAMES[int(c)] for c, h in zip(raw[:, 0], hole)]
    return {"block": list(range(int(first_block), int(first_block) + len(raw))), "kind": kinds,
            "free": (raw[:, 1] / 255.0).tolist(), "hole": hole.tolist(),
            "isolated": (raw[:, 0] == C.MIGRATE_ISOLATE).tolist()}
