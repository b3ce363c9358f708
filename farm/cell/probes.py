"""Probes: what users measure on the final state of a simulation, as the kernel would be asked.

A probe spec is `KIND[:KEY=VALUE,...]` (read by `params.parse_probe`). Probes run in order; pages
they obtain (huge pages, gigantic pages) stay allocated until every probe has run, as a hugetlb
pool keeps them.

- `compact`: full compaction (echo 1 > /proc/sys/vm/compact_memory).
- `hugepages:order=9,count=N[,release=1]`: allocate up to N blocks of that order the way hugetlb
  grows its pool (set_max_huge_pages(): movable allocations with __GFP_RETRY_MAYFAIL, direct
  compaction and reclaim with retries, until the first failure: on a single node the pool stops
  growing there); kswapd and kcompactd run between the allocations when they woke them. With
  `release=1` the pool is freed when the probe ends (echo 0 > nr_hugepages), before the next
  probe.
- `contig:size=2M,isolation=pageblock,attempts=N`: alloc_contig_range() on N naturally aligned
  candidate ranges spread evenly over ZONE_NORMAL; each range obtained is released at once.
- `gigantic:count=N[,size=1G]`: alloc_contig_pages() N times (hugetlb gigantic pages).
- `offline:block=128M`: try to offline every memory block of that size (each success is put
  online again before the next block is tried).
- `cma:size=4M,count=N`: cma_alloc() N times from the CMA area; released when the probe ends.
- `virtio-mem:unplug=SIZE[,device=SIZE,block=SIZE,isolation=pageblock|maxorder]`: a virtio-mem
  device owns the node's top `device` bytes (default: a replayed capture's device region, else
  ZONE_MOVABLE), fully plugged and online, with device blocks of `block` (default: the capture's,
  else 2M, qemu's); the host lowers its requested size by `unplug` and the driver
  gives back what it can (kernels/virtio_mem.py). `asked` and `obtained` are bytes; the memory
  given back is gone for later probes. `isolation` picks the regime (and with it the subblock
  size) for this probe: maxorder is the driver before 5.19.
"""

from __future__ import annotations

import numpy as np

from kernels import constants as C
from kernels.compaction import GFP_RETRY, alloc_pages_gfp, background, compact_node
from kernels.page_alloc import free_pages, page_zone
from kernels.zone import kernel_zone_index
from kernels.page_isolation import (
    CONTIG_OK, FAIL_REASON_NAMES, NR_FAIL_REASONS, alloc_contig_pages, alloc_contig_range,
    cma_alloc, cma_release, free_contig_range, is_hugetlb, offline_pages, online_pages,
    pfn_to_online_page,
)

from kernels.virtio_mem import virtio_mem_blocks_left, virtio_mem_init, virtio_mem_resize

from .params import PROBE_KEYS, ParamError, format_size, parse_probe, parse_size


VIRTIO_MEM_DEFAULT_BLOCK = 2 << 20     # qemu's virtio-mem-pci block-size on x86-64 (the THP size)

HAZARDS = {"offline_lost_pages": C.HAZARD_OFFLINE_LOST,
           "online_beyond_block_pages": C.HAZARD_ONLINE_BEYOND}


def _stat_sum(node, idx):
    return int(sum(int(z.stat[idx]) for z in node))


def _result(kind, params, asked, obtained, migrated, reasons):
    failures = {FAIL_REASON_NAMES[i]: int(n) for i, n in enumerate(reasons) if i != CONTIG_OK and n}
    if kind == "hugepages" and obtained < asked:
        failures = {"no_free_block_after_compaction": int(asked - obtained)}
    return {"kind": kind, "params": params, "asked": int(asked), "obtained": int(obtained),
            "success_rate": (obtained / asked) if asked else None,
            "pages_migrated": int(migrated), "failure_reasons": failures}


def run_probes(node, specs: list[str], p: dict, cc: np.ndarray, cma_bitmap: np.ndarray,
               between=None, clock=None) -> list[dict]:
    """Run the probes in order on the node; `between(i, node)`, if given, runs before probe i,
    and `clock(i, n, node)` before the n-th allocation of a hugepages probe i (what a replayed
    kernel's timers did meanwhile)."""
    held: list[tuple[int, int]] = []     # (pfn, pages) obtained by hugepages / gigantic probes
    out = []
    kernel_zi = kernel_zone_index(node)
    normal = node[kernel_zi]
    for i, spec in enumerate(specs):
        if between is not None:
            between(i, node)
        kind, params, _ = parse_probe(spec)
        reasons = np.zeros(NR_FAIL_REASONS, dtype=np.int64)
        before = _stat_sum(node, C.PGMIGRATE_SUCCESS)
        hazards_before = {name: _stat_sum(node, idx) for name, idx in HAZARDS.items()}
        asked = obtained = 0
        if kind == "compact":
            compact_node(node, cc)          # compact_memory drains no pcp list
            asked = obtained = 1
        elif kind == "hugepages":
            order, asked = params["order"], params["count"]
            if order > p["max_order"]:
                raise ParamError("probe", f"hugepages order {order} exceeds max_order {p['max_order']}")
            for n in range(asked):
                if clock is not None:
                    clock(i, n, node)
                pfn = alloc_pages_gfp(node, cc, order, C.MIGRATE_MOVABLE, C.PG_CONTIG, GFP_RETRY)
                background(node)        # kswapd and kcompactd run meanwhile
                if pfn < 0:
                    break
                obtained += 1
            if params.get("release"):
                free_hugetlb_pool(node)
        elif kind == "contig":
            nr = params["size"] >> C.PAGE_SHIFT
            old = int(normal.zp[C.ZP_CONTIG_MAXORDER])
            if "isolation" in params:
                normal.zp[C.ZP_CONTIG_MAXORDER] = int(params["isolation"] == "maxorder")
            start, end = int(normal.zp[C.ZP_ZONE_START]), int(normal.zp[C.ZP_ZONE_END])
            first = (start + nr - 1) // nr * nr
            candidates = (end - first) // nr if nr else 0
            asked = min(params["attempts"], candidates)
            for i in range(asked):
                pfn = first + (i * candidates // asked) * nr
                r = alloc_contig_range(node, kernel_zi, pfn, pfn + nr, C.MIGRATE_MOVABLE)
                reasons[r] += 1
                if r == CONTIG_OK:
                    obtained += 1
                    free_contig_range(node, pfn, nr)
            normal.zp[C.ZP_CONTIG_MAXORDER] = old
        elif kind == "gigantic":
            nr = params["size"] >> C.PAGE_SHIFT
            asked = params["count"]
            for _ in range(asked):
                pfn = alloc_contig_pages(node, nr, reasons)
                if pfn < 0:
                    break
                obtained += 1
                held.append((pfn, nr))
        elif kind == "offline":
            nr = params["block"] >> C.PAGE_SHIFT
            if nr < 1 << p["pageblock_order"] or nr & (nr - 1):
                raise ParamError("probe", "offline block must be a power of two of at least a pageblock")
            total = int(node[-1].zp[C.ZP_ZONE_END])
            for start in range(0, total - nr + 1, nr):
                if pfn_to_online_page(node[page_zone(node, start)], start) < 0:
                    continue        # offline or removed already (virtio-mem): no block to offline
                asked += 1
                r = offline_pages(node, start, nr)
                reasons[r] += 1
                if r == CONTIG_OK:
                    obtained += 1
                    online_pages(node, start, nr)
        elif kind == "cma":
            cma_start, cma_end = int(normal.zp[C.ZP_CMA_START]), int(normal.zp[C.ZP_CMA_END])
            if cma_start == cma_end:
                raise ParamError("probe", "the cma probe needs a CMA area (cma_size > 0)")
            nr = params["size"] >> C.PAGE_SHIFT
            align = 1 << p["pageblock_order"] if nr >= 1 << p["pageblock_order"] else 1
            asked = params["count"]
            got = []
            for _ in range(asked):
                pfn = cma_alloc(node, cma_start, cma_end, nr, align, cma_bitmap, reasons)
                if pfn < 0:
                    continue
                obtained += 1
                got.append(pfn)
            for pfn in got:
                cma_release(node, cma_start, pfn, nr, cma_bitmap)
        elif kind == "virtio-mem":
            regimes = [int(z.zp[C.ZP_CONTIG_MAXORDER]) for z in node]
            vm, extra = _virtio_mem(node, params, p)
            asked = params["unplug"]
            obtained = virtio_mem_resize(node, vm, vm.plugged_size - (asked >> C.PAGE_SHIFT)) << C.PAGE_SHIFT
            for z, old in zip(node, regimes):
                z.zp[C.ZP_CONTIG_MAXORDER] = old
            reasons += vm.reasons
            extra.update(removed_blocks=vm.removed_blocks, fake_offline_calls=vm.fake_offline_calls,
                         blocks_left=virtio_mem_blocks_left(node, vm))
        migrated = _stat_sum(node, C.PGMIGRATE_SUCCESS) - before
        out.append(_result(kind, {k: (format_size(v) if PROBE_KEYS[kind][k][0] is parse_size else v)
                                  for k, v in params.items()}, asked, obtained, migrated, reasons))
        if kind == "offline":
            # what a kernel with this max_order above the block's order would do (page_isolation.py)
            out[-1]["hazards"] = {name: _stat_sum(node, idx) - hazards_before[name]
                                  for name, idx in HAZARDS.items()}
        if kind == "virtio-mem":
            out[-1].update(extra)
    for pfn, nr in held:
        free_contig_range(node, pfn, nr)
    free_hugetlb_pool(node)
    return out


def _virtio_mem(node, params: dict, p: dict):
    """The device of a virtio-mem probe and the probe's facts for the JSON: `device` bytes at the
    top of the node; else a replayed capture's device region (p['virtio_mem_region']); else
    ZONE_MOVABLE. The probe's isolation regime (the cell's unless given) is set on every zone; the
    caller restores the zones' own afterwards."""
    top = int(node[-1].zp[C.ZP_ZONE_END])
    region = p.get("virtio_mem_region")       # a replayed capture's device (its iomem)
    if "device" in params:
        nr = params["device"] >> C.PAGE_SHIFT
        start = top - nr
    elif region is not None:
        start, nr = region
        if start + nr > top:
            raise ParamError("probe", "virtio-mem: the capture's device region lies beyond the replayed node")
    elif int(node[-1].zp[C.ZP_ZONE_IDX]) == C.ZONE_MOVABLE:
        nr = top - int(node[-1].zp[C.ZP_ZONE_START])
        start = top - nr
    else:
        raise ParamError("probe", "virtio-mem: the node has no ZONE_MOVABLE; give device=SIZE")
    if not 0 < nr <= top:
        raise ParamError("probe", f"virtio-mem: device {format_size(nr << C.PAGE_SHIFT)} "
                                  "does not fit the node")
    if params["unplug"] > nr << C.PAGE_SHIFT:
        raise ParamError("probe", "virtio-mem: unplug is larger than the device")
    maxorder = (params["isolation"] == "maxorder" if "isolation" in params
                else bool(node[0].zp[C.ZP_CONTIG_MAXORDER]))
    for z in node:
        z.zp[C.ZP_CONTIG_MAXORDER] = int(maxorder)
    try:
        # the device block: the probe's, else a replayed capture's, else qemu's default on x86-64
        block = params.get("block") or p.get("virtio_mem_block") or VIRTIO_MEM_DEFAULT_BLOCK
        vm = virtio_mem_init(node, start, nr, block >> C.PAGE_SHIFT, maxorder)
    except ValueError as e:
        raise ParamError("probe", f"virtio-mem: {e}") from None
    extra = {"device": nr << C.PAGE_SHIFT, "block": block, "mode": "sbm" if vm.in_sbm else "bbm",
             "subblock": (vm.sb_size if vm.in_sbm else vm.bb_size) << C.PAGE_SHIFT,
             "isolation": "maxorder" if maxorder else "pageblock"}
    return vm, extra


def free_hugetlb_pool(node) -> int:
    """echo 0 > nr_hugepages: free every hugetlb page of the pool wherever it is now (a later
    alloc_contig_range() may have replaced a pool page by one elsewhere, and offlining dissolves
    them). Returns how many were freed."""
    n = 0
    for z in node:
        heads = np.nonzero((z.page_flags & (C.PG_HEAD | C.PG_CONTIG)) == (C.PG_HEAD | C.PG_CONTIG))[0]
        for pfn in heads:
            if is_hugetlb(z, int(pfn)):
                free_pages(node, int(pfn))
                n += 1
    return n
