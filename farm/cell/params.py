"""Model and workload parameters: one registry, used by `farm simulate` options and (later) by
sweep files, so a sweep cell can always be rerun by hand.

Every parameter has a parser that turns user input (a CLI string or a TOML value) into its
canonical value, and `resolve()` checks the combination. Errors name the parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from kernels.constants import PAGE_SHIFT, POLICIES, X86_64_DMA32_END, X86_64_DMA_END
from kernels.zone import kernel_zone_span, zone_spans

WORKLOADS = ("smallpages", "mixed", "fragmenter", "thp", "cma", "hotplug", "scatterer")
THP_DEFRAG = ("always", "defer", "defer+madvise", "madvise", "never")
MIGRATETYPE_CHOICES = {"unmovable": 0, "movable": 1, "reclaimable": 2}
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ParamError(ValueError):
    """A parameter value or combination the model cannot honour. `key` names the parameter."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


def parse_size(text: Any, key: str = "memory") -> int:
    """'4G' -> 4 GiB in bytes (binary units K, M, G, T; optional trailing 'iB'/'B')."""
    if isinstance(text, bool):
        raise ParamError(key, f"expected a size such as 4G, got {text!r}")
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ParamError(key, f"expected a size such as 4G, 512M or 1T, got {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def format_size(nbytes: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if nbytes % _UNITS[unit] == 0 and nbytes >= _UNITS[unit]:
            return f"{nbytes // _UNITS[unit]}{unit}"
    return str(nbytes)


def _int(key, v, lo=None, hi=None):
    if isinstance(v, bool):
        raise ParamError(key, f"expected an integer, got {v!r}")
    try:
        x = int(v) if not isinstance(v, float) or v.is_integer() else None
    except (TypeError, ValueError):
        x = None
    if x is None:
        raise ParamError(key, f"expected an integer, got {v!r}")
    if lo is not None and x < lo or hi is not None and x > hi:
        raise ParamError(key, f"{x} is outside {lo}..{hi}")
    return x


def _float01(key, v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ParamError(key, f"expected a number between 0 and 1, got {v!r}") from None
    if isinstance(v, bool) or not 0.0 <= x <= 1.0:
        raise ParamError(key, f"expected a number between 0 and 1, got {v!r}")
    return x


def _bool(key, v):
    if isinstance(v, bool):
        return v
    s = str(v).lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ParamError(key, f"expected true or false, got {v!r}")


def _choice(choices):
    def parse(key, v):
        if v not in choices:
            raise ParamError(key, f"unknown value {v!r}; choose one of {', '.join(choices)}")
        return v
    return parse


def _size(key, v):
    return format_size(parse_size(v, key))


def _opt_size(key, v):
    return None if v in (None, "", "section") else _size(key, v)


def _opt_int(key, v):
    return None if v in (None, "", "auto") else _int(key, v, 0)


def _holes(key, v):
    items = v if isinstance(v, (list, tuple)) else [x for x in str(v).split(",") if x]
    out = []
    for item in items:
        parts = str(item).split(":")
        if len(parts) != 2:
            raise ParamError(key, f"a hole is START:END (e.g. 1G:1088M), got {item!r}")
        start, end = (parse_size(p, key) for p in parts)
        if end <= start:
            raise ParamError(key, f"hole {item!r} is empty")
        out.append(f"{format_size(start)}:{format_size(end)}")
    return out


def _weights(names):
    """NAME=WEIGHT[,NAME=WEIGHT...] over a fixed set of names -> canonical string."""
    def parse(key, v):
        out = {}
        for part in str(v).split(","):
            m = re.fullmatch(r"\s*([a-z]+)\s*=\s*([0-9.eE+]+)\s*", part)
            if not m or m.group(1) not in names:
                raise ParamError(key, f"expected NAME=NUMBER pairs with NAME in {', '.join(names)}, got {v!r}")
            out[m.group(1)] = float(m.group(2))
        return ",".join(f"{n}={out[n]:g}" for n in names if n in out)
    return parse


# kind -> {key: (parser, default)}; a default of None means required
PROBE_KEYS = {
    "compact": {},
    "hugepages": {"order": (int, 9), "count": (int, None), "release": (int, None)},
    "contig": {"size": (parse_size, "2M"), "isolation": (str, None), "attempts": (int, 64)},
    "gigantic": {"count": (int, 1), "size": (parse_size, "1G")},
    "offline": {"block": (parse_size, None)},
    "cma": {"size": (parse_size, "4M"), "count": (int, 1)},
    "virtio-mem": {"unplug": (parse_size, None), "device": (parse_size, None),
                   "block": (parse_size, None), "isolation": (str, None)},
}


#: Probe settings that may be left out (and are then not in the canonical spec).
OPTIONAL_PROBE_KEYS = {("contig", "isolation"), ("hugepages", "release"), ("virtio-mem", "device"),
                       ("virtio-mem", "isolation"), ("virtio-mem", "block")}


def parse_probe(spec: str, key: str = "probe") -> tuple[str, dict, str]:
    """'hugepages:order=9,count=100' -> ('hugepages', {'order': 9, 'count': 100}, canonical spec)."""
    kind, _, rest = spec.strip().partition(":")
    if kind not in PROBE_KEYS:
        raise ParamError(key, f"unknown probe {kind!r}; probes: {', '.join(PROBE_KEYS)}")
    given = {}
    for part in filter(None, (x.strip() for x in rest.split(","))):
        k, eq, v = part.partition("=")
        if not eq or k not in PROBE_KEYS[kind]:
            raise ParamError(key, f"probe {kind}: unknown or malformed setting {part!r} "
                             f"(settings: {', '.join(PROBE_KEYS[kind]) or 'none'})")
        parser = PROBE_KEYS[kind][k][0]
        try:
            given[k] = parser(v)
        except (ValueError, ParamError):
            raise ParamError(key, f"probe {kind}: bad value for {k}: {v!r}") from None
    params = {}
    for k, (parser, default) in PROBE_KEYS[kind].items():
        if k in given:
            params[k] = given[k]
        elif default is not None:
            params[k] = parser(default) if isinstance(default, str) and parser is parse_size else default
        elif (kind, k) not in OPTIONAL_PROBE_KEYS:
            raise ParamError(key, f"probe {kind} needs {k}=...")
    if "isolation" in params and params["isolation"] not in ("pageblock", "maxorder"):
        raise ParamError(key, f"probe {kind}: isolation is pageblock or maxorder")
    if kind == "hugepages" and params["order"] < 1:
        raise ParamError(key, "probe hugepages: order must be at least 1 (a huge page is a compound page)")
    if "release" in params and params["release"] not in (0, 1):
        raise ParamError(key, "probe hugepages: release is 0 or 1")
    for k in ("count", "attempts"):
        if k in params and params[k] < 0:
            raise ParamError(key, f"probe {kind}: {k} must not be negative")
    canon = ",".join(f"{k}={format_size(v) if PROBE_KEYS[kind][k][0] is parse_size else v}"
                     for k, v in params.items())
    return kind, params, f"{kind}:{canon}" if canon else kind


def _probes(key, v):
    items = v if isinstance(v, (list, tuple)) else [v]
    return [parse_probe(str(item), key)[2] for item in items]


def _order_mix(key, v):
    """'0=0.9,3=0.1' -> '0=0.9,3=0.1' (weights per order 0..3; normalised later)."""
    weights = {}
    for part in str(v).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*=\s*([0-9.]+)\s*", part)
        if not m:
            raise ParamError(key, f"expected ORDER=WEIGHT[,ORDER=WEIGHT...] such as 0=0.9,3=0.1, got {v!r}")
        order, w = int(m.group(1)), float(m.group(2))
        if order > 3:
            raise ParamError(key, f"order {order} is not a small order (0..3)")
        weights[order] = w
    if sum(weights.values()) <= 0:
        raise ParamError(key, "weights must add up to more than 0")
    return ",".join(f"{o}={weights[o]:g}" for o in sorted(weights))


@dataclass(frozen=True)
class Param:
    name: str
    parse: Callable[[str, Any], Any]
    default: Any
    help: str
    group: str = "model"

    @property
    def repeatable(self) -> bool:
        """List-valued: its `farm simulate` option is given once per item (`--probe A --probe B`)."""
        return isinstance(self.default, list)


PARAMS: dict[str, Param] = {p.name: p for p in [
    Param("memory", _size, "4G", "zone size, binary units (4G = 4 GiB; K, M, G, T)"),
    Param("max_order", lambda k, v: _int(k, v, 1, 30), 10,
          "largest order of a free block, inclusive (MAX_PAGE_ORDER, kernel >= 6.4; x86-64: 10)"),
    Param("pageblock_order", lambda k, v: _int(k, v, 1, 30), 9, "pageblock order (x86-64: 9 = 2 MiB)"),
    Param("section_bits", lambda k, v: _int(k, v, 12, 46), 27, "SECTION_SIZE_BITS (x86-64: 27 = 128 MiB)"),
    Param("memory_block_size", _opt_size, None, "memory block size (default: one section)"),
    Param("vmemmap", _bool, True,
          "SPARSEMEM_VMEMMAP: buddies may span sections; false enforces max_order + PAGE_SHIFT <= section_bits"),
    Param("holes", _holes, [], "reserved pfn ranges START:END in bytes (e.g. 1G:1088M), comma separated"),
    Param("policy", _choice(tuple(POLICIES)), "v6.15", "allocator policy: " + ", ".join(POLICIES)),
    Param("pcp", _bool, False, "per-cpu page lists (one CPU; batch/high as the kernel sizes them)"),
    Param("vmstat_interval", lambda k, v: _int(k, v, 0), 100000,
          "the simulated clock, allocator calls per second: each second the vmstat update runs "
          "decay_pcp_high() (pcp, 6.7+ policies), every half second kcompactd checks the "
          "fragmentation score for proactive compaction (0 = no clock)"),
    Param("watermark_boost_factor", lambda k, v: _int(k, v, 0), 15000,
          "vm.watermark_boost_factor: a fallback below pageblock_order raises the watermarks by a "
          "pageblock, up to this many 1/10000 of the high watermark, and wakes kswapd (0 = off)"),
    Param("kswapd", _bool, True,
          "kswapd reclaims page cache when a zone falls below its low watermark (to high) or is "
          "boosted, then wakes kcompactd (false: never runs)"),
    Param("kcompactd", _bool, True,
          "kcompactd compacts in the background when kswapd or a request that cannot reclaim "
          "wakes it (false: never runs)"),
    Param("compaction_proactiveness", lambda k, v: _int(k, v, 0, 100), 20,
          "vm.compaction_proactiveness: kcompactd compacts whole zones while the node's "
          "fragmentation score is above 100 - this (0 = off; needs kcompactd and the clock)"),
    Param("min_free_kbytes", _opt_int, None, "vm.min_free_kbytes (default: as the kernel computes it, "
          "raised by khugepaged when thp_enabled)"),
    Param("thp_enabled", _bool, True,
          "/sys/kernel/mm/transparent_hugepage/enabled is always or madvise (false: never): "
          "khugepaged raises min_free_kbytes at boot (set_recommended_min_free_kbytes()); false "
          "also turns the workloads' THP faults into base-page faults"),
    Param("isolation", _choice(("pageblock", "maxorder")), "pageblock",
          "alloc_contig_range isolation: pageblock (5.19+) or maxorder (before 5.19: whole "
          "max(MAX_ORDER, pageblock) blocks)"),
    Param("movable_fraction", _float01, 0.0,
          "share of memory in ZONE_MOVABLE (at the top, rounded to memory blocks)"),
    Param("zones", _choice(("normal", "x86_64")), "normal",
          "zones below ZONE_MOVABLE: normal (one ZONE_NORMAL; no ALLOC_NOFRAGMENT) or x86_64 "
          "(ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB, ZONE_NORMAL above, with lowmem_reserve "
          "and ALLOC_NOFRAGMENT)"),
    Param("cma_size", _size, "0", "CMA area at the top of the highest zone below ZONE_MOVABLE "
          "(0 = none)"),
    Param("workload", _choice(WORKLOADS), "smallpages", "workload: " + ", ".join(WORKLOADS), "workload"),
    Param("ops", lambda k, v: _int(k, v, 0), 200000, "workload operations (allocations + frees)", "workload"),
    Param("seed", lambda k, v: _int(k, v, 0), 1, "random seed", "workload"),
    Param("occupancy", _float01, 0.5, "target fraction of managed memory allocated", "workload"),
    Param("order_mix", _order_mix, "0=1", "small-order mix, ORDER=WEIGHT,... (orders 0..3)", "workload"),
    Param("migratetype", _choice(tuple(MIGRATETYPE_CHOICES)), "movable",
          "migratetype of the workload's allocations", "workload"),
    Param("mix", _weights(("movable", "unmovable", "reclaimable")), None,
          "steady-state class weights (mixed, thp, cma, hotplug)", "workload"),
    Param("lifetime", _weights(("movable", "unmovable", "reclaimable")), None,
          "mean lifetimes in operations per class (steady-state workloads)", "workload"),
    Param("thp_fraction", _float01, None,
          "share of movable allocations that are THP faults (order pageblock_order, one async "
          "compaction, fallback to a base page)", "workload"),
    Param("thp_defrag", _choice(THP_DEFRAG), "madvise",
          "/sys/kernel/mm/transparent_hugepage/defrag: always, defer, defer+madvise, madvise or "
          "never (which THP faults may compact directly)", "workload"),
    Param("thp_madvise", _bool, False,
          "the THP faults' regions are madvise(MADV_HUGEPAGE)d (default: true for thp, false "
          "otherwise)", "workload"),
    Param("pinned_fraction", _float01, 0.0, "share of movable allocations that are pinned", "workload"),
    Param("pagecache_fraction", _float01, 0.0,
          "steady-state workloads: share of movable small-order allocations that are file pages; "
          "at the end of their lifetime they stay in the page cache, which only reclaim frees "
          "(fragmenter: its kept files are page cache whatever this is)", "workload"),
    Param("atomic_fraction", _float01, 0.0,
          "share of unmovable allocations of order > 0 that are GFP_ATOMIC (no reclaim, __GFP_HIGH: "
          "they may dip below the min watermark and reserve highatomic pageblocks)", "workload"),
    Param("period", lambda k, v: _int(k, v, 1), 2000,
          "cma / hotplug: operations between periodic cma_alloc or offline attempts", "workload"),
    Param("hold", lambda k, v: _int(k, v, 1), 1000,
          "cma / hotplug: operations a CMA allocation or an offline block is held", "workload"),
    Param("cma_chunk", _size, "4M", "cma workload: size of each cma_alloc", "workload"),
    Param("fill", _float01, 0.43, "fragmenter, scatterer: anon memory allocated, as a share of memory "
          "(scatterer: 0.9)", "workload"),
    Param("rounds", lambda k, v: _int(k, v, 0), 20000,
          "scatterer: rounds of freeing anon pages and allocating one unmovable page", "workload"),
    Param("free_per_round", lambda k, v: _int(k, v, 1), 2,
          "scatterer: each round frees 1..N anon pages, at random", "workload"),
    Param("holders", lambda k, v: _int(k, v, 0), None,
          "fragmenter: unmovable pipe buffers held (default 200 per GiB)", "workload"),
    Param("keep_files", lambda k, v: _int(k, v, 1), 4, "fragmenter: one file in N is kept", "workload"),
    Param("probe", _probes, [], "probes run in order on the final state (repeatable): compact, "
          "hugepages:order=9,count=N, contig:size=2M,isolation=pageblock,attempts=N, "
          "gigantic:count=N[,size=1G], offline:block=128M, cma:size=4M,count=N, "
          "virtio-mem:unplug=SIZE[,device=SIZE,block=2M,isolation=...]", "probe"),
    Param("check_every", lambda k, v: _int(k, v, 0), 0,
          "run check_zone() every N operations (debug; 0 = off)", "workload"),
]}

WORKLOAD_DEFAULTS = {
    # mixed: page cache and anon churn, long-lived slab, a few THP faults
    "mixed": {"mix": "movable=0.85,unmovable=0.08,reclaimable=0.07",
              "lifetime": "movable=20000,unmovable=400000,reclaimable=100000", "thp_fraction": 0.02},
    "thp": {"mix": "movable=0.95,unmovable=0.03,reclaimable=0.02",
            "lifetime": "movable=20000,unmovable=400000,reclaimable=100000", "thp_fraction": 0.3,
            "thp_madvise": True},
    "cma": {"mix": "movable=0.9,unmovable=0.05,reclaimable=0.05",
            "lifetime": "movable=20000,unmovable=400000,reclaimable=100000", "thp_fraction": 0.0},
    "hotplug": {"mix": "movable=0.9,unmovable=0.05,reclaimable=0.05",
                "lifetime": "movable=20000,unmovable=400000,reclaimable=100000", "thp_fraction": 0.0},
    # scatterer: memory tight, as the capture workload runs it in a guest with little to spare
    "scatterer": {"fill": 0.9},
}


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Parse every given parameter, fill defaults, and check the combination.

    Raises ParamError naming the first offending parameter."""
    for key in raw:
        if key not in PARAMS:
            raise ParamError(key, "unknown parameter")
    p = {name: (spec.parse(name, raw[name]) if raw.get(name) is not None else spec.default)
         for name, spec in PARAMS.items()}
    for name, value in WORKLOAD_DEFAULTS.get(p["workload"], {}).items():
        if raw.get(name) is None:
            p[name] = PARAMS[name].parse(name, value)
    memory = parse_size(p["memory"])
    page = 1 << PAGE_SHIFT
    if memory % page:
        raise ParamError("memory", f"{p['memory']} is not a whole number of 4 KiB pages")
    nr_pages = memory >> PAGE_SHIFT
    if nr_pages >= 1 << 31:
        raise ParamError("memory", "more than 2^31 pages (8 TiB) is not supported")
    if p["pageblock_order"] > p["max_order"]:
        raise ParamError("pageblock_order",
                         f"{p['pageblock_order']} exceeds max_order {p['max_order']}")
    if nr_pages < 1 << p["max_order"]:
        raise ParamError("memory", f"{p['memory']} is smaller than one max_order "
                         f"{p['max_order']} block ({format_size(page << p['max_order'])})")
    if p["pageblock_order"] + PAGE_SHIFT > p["section_bits"]:
        raise ParamError("pageblock_order", f"a pageblock of order {p['pageblock_order']} is larger "
                         f"than a section (section_bits {p['section_bits']})")
    if not p["vmemmap"] and p["max_order"] + PAGE_SHIFT > p["section_bits"]:
        raise ParamError("max_order", f"max_order {p['max_order']} + PAGE_SHIFT {PAGE_SHIFT} exceeds "
                         f"section_bits {p['section_bits']} (allowed only with vmemmap = true)")
    section = 1 << p["section_bits"]
    if p["memory_block_size"] is not None:
        mbs = parse_size(p["memory_block_size"])
        if mbs < section or mbs & (mbs - 1):
            raise ParamError("memory_block_size", f"{p['memory_block_size']} is not a power-of-two "
                             f"multiple of the section size ({format_size(section)})")
    holes = []
    for h in p["holes"]:
        start, end = (parse_size(x) for x in h.split(":"))
        if start % page or end % page or end > memory:
            raise ParamError("holes", f"hole {h} is not page aligned inside memory {p['memory']}")
        holes.append((start >> PAGE_SHIFT, end >> PAGE_SHIFT))
    if not p["thp_enabled"] and p["thp_fraction"]:
        p["thp_fraction"] = 0.0        # THP "never": no fault is a THP fault
    if p["workload"] == "fragmenter" and p["holders"] is None:
        p["holders"] = 200 * memory // (1 << 30)
    cma = parse_size(p["cma_size"])
    align = page << (max(p["max_order"], p["pageblock_order"]) if p["isolation"] == "maxorder"
                     else p["pageblock_order"])
    if cma % align:
        raise ParamError("cma_size", f"{p['cma_size']} is not a multiple of the CMA alignment "
                         f"({format_size(align)} with isolation = {p['isolation']})")
    if cma > memory // 2:
        raise ParamError("cma_size", f"{p['cma_size']} is more than half of memory")
    if p["workload"] == "cma" and not cma:
        raise ParamError("cma_size", "the cma workload needs a CMA area (cma_size > 0)")
    if p["cma_chunk"] and parse_size(p["cma_chunk"]) > cma and p["workload"] == "cma":
        raise ParamError("cma_chunk", f"{p['cma_chunk']} is larger than the CMA area")
    block = parse_size(p["memory_block_size"]) if p["memory_block_size"] else section
    movable_unit = max(block, page << p["max_order"])
    movable = int(memory * p["movable_fraction"]) // movable_unit * movable_unit
    if p["movable_fraction"] > 0 and movable == 0:
        raise ParamError("movable_fraction", f"{p['movable_fraction']} of {p['memory']} is less than "
                         f"one {format_size(movable_unit)} unit")
    x86 = p["zones"] == "x86_64"
    p["_dma_end"] = X86_64_DMA_END if x86 else 0
    p["_dma32_end"] = X86_64_DMA32_END if x86 else 0
    if x86 and nr_pages - (movable >> PAGE_SHIFT) <= X86_64_DMA_END:
        raise ParamError("zones", "x86_64 zones need more than 16 MiB below ZONE_MOVABLE")
    kernel = kernel_zone_span(zone_spans(nr_pages, movable >> PAGE_SHIFT, p["_dma_end"], p["_dma32_end"]))
    if cma and (kernel is None or (kernel[2] - kernel[1]) << PAGE_SHIFT < 2 * cma):
        raise ParamError("cma_size", "the CMA area does not fit in the highest zone below ZONE_MOVABLE")
    p["_movable_pages"] = movable >> PAGE_SHIFT
    p["_cma_pages"] = cma >> PAGE_SHIFT
    p["_memory_block_pages"] = block >> PAGE_SHIFT
    p["nr_pages"] = nr_pages
    p["_holes_pfn"] = holes
    return p


def public(params: dict[str, Any]) -> dict[str, Any]:
    """The resolved parameters without derived helpers (those starting with '_')."""
    return {k: v for k, v in params.items() if not k.startswith("_")}
