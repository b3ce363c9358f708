"""One simulation: build the node, boot it, run the workload, collect the metrics, run the probes.

This is what a sweep cell runs; it returns plain Python data (JSON-ready).
"""

from __future__ import annotations

import time
from typing import Any

import numba
import numpy as np

from kernels import MODEL_VERSION
from kernels import constants as C
from kernels import workloads as W
from kernels.check import ERRORS, check_zone
from kernels.compaction import GFP_THP, GFP_THP_DEFER, GFP_THP_LIGHT, GFP_THP_NORETRY
from kernels.page_alloc import boot_node
from kernels.rng import seed_state
from kernels.vmstat import extfrag_index, pagetypeinfo_blocks, pagetypeinfo_free, unusable_index
from kernels.zone import kernel_zone_index, make_node

from .params import MIGRATETYPE_CHOICES, parse_size, public, resolve
from .probes import run_probes

# Counters reported in `counters`, by output name (summed over the zones).
REPORTED_COUNTERS = {
    "alloc_ops": C.ALLOC_OPS, "alloc_fail": C.ALLOC_FAIL, "free_ops": C.FREE_OPS,
    "split_steps": C.SPLIT_STEPS, "merge_steps": C.MERGE_STEPS,
    "orders_scanned": C.ORDERS_SCANNED, "wmark_orders_scanned": C.WMARK_ORDERS_SCANNED,
    "fallback_claim": C.FALLBACK_CLAIM, "fallback_steal": C.FALLBACK_STEAL,
    "pgalloc_normal": C.PGALLOC, "pgfree": C.PGFREE,
    "pcp_refills": C.PCP_REFILLS, "pcp_drains": C.PCP_DRAINS,
    "compact_stall": C.COMPACT_STALL, "compact_success": C.COMPACT_SUCCESS,
    "compact_fail": C.COMPACT_FAIL, "compact_migrate_scanned": C.COMPACT_MIGRATE_SCANNED,
    "compact_free_scanned": C.COMPACT_FREE_SCANNED, "compact_isolated": C.COMPACT_ISOLATED,
    "pgmigrate_success": C.PGMIGRATE_SUCCESS, "pgmigrate_fail": C.PGMIGRATE_FAIL,
    "compact_deferred": C.COMPACT_DEFERRED,
    "max_split_steps": C.MAX_SPLIT_STEPS, "max_merge_steps": C.MAX_MERGE_STEPS,
    "max_orders_scanned": C.MAX_ORDERS_SCANNED,
    "nr_reserved_highatomic": C.NR_RESERVED_HIGHATOMIC,
    "nr_watermark_boosts": C.NR_WATERMARK_BOOSTS, "pageoutrun": C.PAGEOUTRUN,
    "pgsteal_kswapd": C.PGSTEAL_KSWAPD, "pgsteal_direct": C.PGSTEAL_DIRECT,
    "compact_daemon_wake": C.COMPACT_DAEMON_WAKE, "proactive_compact": C.PROACTIVE_COMPACT,
    "nr_hugetlb_replaced": C.NR_HUGETLB_REPLACED, "nr_hugetlb_dissolved": C.NR_HUGETLB_DISSOLVED,
    "hazard_offline_lost_pages": C.HAZARD_OFFLINE_LOST,
    "hazard_online_beyond_block_pages": C.HAZARD_ONLINE_BEYOND,
}
CLASS_ORDER_MIX = (  # small-order mixes per class of the steady-state workloads (orders 0..3)
    (0.70, 0.15, 0.10, 0.05),   # unmovable: slab of several page orders, page tables, stacks
    (0.90, 0.05, 0.03, 0.02),   # movable: anon and page cache, a few large folios
    (0.90, 0.10, 0.00, 0.00),   # reclaimable: dentries, inodes
)


class SimulationError(RuntimeError):
    """The model broke one of its own invariants (a bug in the model, not in the input)."""


def build_node(p: dict[str, Any], owner_slots: int = 0):
    memory_block_bits = None
    if p["memory_block_size"] is not None:
        memory_block_bits = parse_size(p["memory_block_size"]).bit_length() - 1
    node = make_node(p["nr_pages"], p["max_order"], p["pageblock_order"], p["policy"],
                     p["_holes_pfn"], p["pcp"], p["min_free_kbytes"], p["section_bits"],
                     memory_block_bits, p["_movable_pages"], owner_slots,
                     p["isolation"] == "maxorder", p["_cma_pages"], p["vmstat_interval"],
                     dma_end=p["_dma_end"], dma32_end=p["_dma32_end"], thp_enabled=p["thp_enabled"],
                     watermark_boost_factor=p["watermark_boost_factor"], kswapd=p["kswapd"],
                     kcompactd=p["kcompactd"], compaction_proactiveness=p["compaction_proactiveness"],
                     proactive_interval_ops=p["vmstat_interval"] // 2 if p["kcompactd"] else 0,
                     pagecache_slots=_pagecache_slots(p))
    boot_node(node)
    return node


def thp_gfp(defrag: str, madvised: bool) -> int:
    """vma_thp_gfp_mask() (6.12): the gfp of a THP fault, as the model's mode. `always`: direct
    reclaim and compaction, with __GFP_NORETRY outside madvised regions; `defer`: none itself,
    but it wakes kswapd, which wakes kcompactd (GFP_TRANSHUGE_LIGHT | __GFP_KSWAPD_RECLAIM);
    `defer+madvise`: direct in madvised regions, as `defer` elsewhere; `madvise`: direct in
    madvised regions, none elsewhere; `never`: none (GFP_TRANSHUGE_LIGHT: no reclaim of any
    kind)."""
    if defrag == "always":
        return GFP_THP if madvised else GFP_THP_NORETRY
    if defrag in ("defer+madvise", "madvise") and madvised:
        return GFP_THP
    if defrag in ("defer", "defer+madvise"):
        return GFP_THP_DEFER
    return GFP_THP_LIGHT


def _order_weights(mix: str) -> np.ndarray:
    w = np.zeros(4, dtype=np.float64)
    for part in mix.split(","):
        o, x = part.split("=")
        w[int(o)] = float(x)
    return np.cumsum(w)


def _named(weights: str) -> dict[str, float]:
    return {k: float(v) for k, v in (x.split("=") for x in weights.split(","))}


def metrics(node) -> dict[str, Any]:
    """buddyinfo, pagetypeinfo and the fragmentation indices of the node (zones summed), and per
    zone when there is more than one."""
    names = C.MIGRATETYPE_NAMES
    per_zone = []
    for z in node:
        free = pagetypeinfo_free(z)
        blocks, mixed = pagetypeinfo_blocks(z)
        per_zone.append((z.nr_free.copy(), int(z.stat[C.NR_FREE_PAGES]), free, blocks, mixed))
    nr_free = sum(x[0] for x in per_zone)
    free = sum(x[2] for x in per_zone)
    blocks = sum(x[3] for x in per_zone)
    mixed = sum(x[4] for x in per_zone)

    def shape(nr_free, nr_free_pages, free, blocks, mixed):
        return {
            "buddyinfo": [int(x) for x in nr_free],
            "nr_free_pages": nr_free_pages,
            "pagetypeinfo": {
                "free": {names[t]: [int(x) for x in free[t]] for t in range(C.MIGRATE_TYPES)},
                "blocks": {names[t]: int(blocks[t]) for t in range(C.MIGRATE_TYPES)},
                "mixed_blocks": {names[t]: int(mixed[t]) for t in range(C.MIGRATE_TYPES)},
            },
            "unusable_index": unusable_index(nr_free),
            "extfrag_index": extfrag_index(nr_free),
        }

    out = shape(nr_free, sum(x[1] for x in per_zone), free, blocks, mixed)
    if len(node) > 1:
        out["zones"] = {C.ZONE_NAMES[int(z.zp[C.ZP_ZONE_IDX])]: shape(*x) for z, x in zip(node, per_zone)}
    return out


def _loop_state(node, rng, *more: np.ndarray | int) -> tuple:
    """What a workload loop left behind, to check that a timing repeat did the same work: the
    zones' counters and free-list lengths, the RNG state, and the workload's own state."""
    return (tuple(z.stat.tobytes() for z in node), tuple(z.nr_free.tobytes() for z in node), rng.tobytes(),
            tuple(x.tobytes() if isinstance(x, np.ndarray) else int(x) for x in more))


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.thread_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this thread) since `start` = _clock()."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


# Each runner times its workload loop and returns ((wall, CPU) seconds of the loop, operations,
# check error code, pfn of the error, _loop_state right after the loop); finish=False (a timing
# repeat, whose node is thrown away) skips the work after the loop.

def _run_smallpages(node, p, rng, extra, finish=True):
    live = np.zeros(W.live_capacity(p["nr_pages"], p["occupancy"]), dtype=np.int32)
    mt = MIGRATETYPE_CHOICES[p["migratetype"]]
    weights = _order_weights(p["order_mix"])
    W.smallpages(node, rng, 0, p["occupancy"], weights, mt, live, 0)  # compile before the clock
    t0 = _clock()
    nlive, code, where = W.smallpages(node, rng, p["ops"], p["occupancy"], weights, mt, live,
                                      p["check_every"])
    times = _since(t0)
    state = _loop_state(node, rng, nlive, live[:nlive])
    if finish and not code:
        W.free_all(node, live, nlive)
    return times, p["ops"], code, where, state


def _compile(fn, args) -> None:
    """Compile `fn` for the types of `args` (or load it from numba's cache) without running it."""
    if hasattr(fn, "compile") and not numba.config.DISABLE_JIT:
        fn.compile(tuple(numba.typeof(a) for a in args))


def _run_fragmenter(node, p, rng, extra, finish=True):
    nr_anon = int(p["fill"] * p["nr_pages"])
    slots = len(node[0].owner)
    kind = np.full(slots, -1, dtype=np.int8)
    files = np.zeros(2 * (nr_anon // 64 + 2), dtype=np.int64)
    args = (node, rng, nr_anon, p["holders"], 64, 8, p["keep_files"], 32, kind, files, p["check_every"])
    _compile(W.fragmenter, args)  # compile (or load the cache) before the clock
    t0 = _clock()
    code, where, kept, pipes = W.fragmenter(*args)
    times = _since(t0)
    state = _loop_state(node, rng, kept, pipes, kind, files)
    extra.update({"fragmenter_files_kept": int(kept), "fragmenter_pipes": int(pipes)})
    ops = int(sum(int(z.stat[C.ALLOC_OPS]) + int(z.stat[C.FREE_OPS]) for z in node))
    return times, ops, code, where, state


def _run_steady_state(node, p, rng, extra, finish=True):
    wp = np.zeros(W.WP_SIZE, dtype=np.float64)
    mix, life = _named(p["mix"]), _named(p["lifetime"])
    wp[W.WP_OCCUPANCY] = p["occupancy"]
    wp[W.WP_W_MOVABLE], wp[W.WP_W_UNMOVABLE], wp[W.WP_W_RECLAIMABLE] = (
        mix.get("movable", 0), mix.get("unmovable", 0), mix.get("reclaimable", 0))
    wp[W.WP_LIFE_MOVABLE], wp[W.WP_LIFE_UNMOVABLE], wp[W.WP_LIFE_RECLAIMABLE] = (
        life.get("movable", 1), life.get("unmovable", 1), life.get("reclaimable", 1))
    wp[W.WP_THP_FRACTION] = p["thp_fraction"]
    wp[W.WP_PINNED_FRACTION] = p["pinned_fraction"]
    wp[W.WP_ATOMIC_FRACTION] = p["atomic_fraction"]
    wp[W.WP_PAGECACHE_FRACTION] = p["pagecache_fraction"]
    wp[W.WP_PERIOD] = p["period"]
    wp[W.WP_HOLD] = p["hold"]
    # a THP is HPAGE_PMD_ORDER (a PMD mapping), not pageblock_order; a kernel whose MAX_PAGE_ORDER
    # is below it has no THP (here: the largest order the zone has)
    wp[W.WP_THP_ORDER] = min(C.HPAGE_PMD_ORDER, p["max_order"])
    wp[W.WP_THP_GFP] = thp_gfp(p["thp_defrag"], p["thp_madvise"])
    normal = node[kernel_zone_index(node)]
    if p["workload"] == "cma":
        wp[W.WP_ACTION] = 1
        count = parse_size(p["cma_chunk"]) >> C.PAGE_SHIFT
        wp[W.WP_CMA_COUNT] = count
        start, end = int(normal.zp[C.ZP_CMA_START]), int(normal.zp[C.ZP_CMA_END])
        align = 1 << p["pageblock_order"] if count >= 1 << p["pageblock_order"] else 1
        area = np.zeros(4 + end - start, dtype=np.int64)
        area[:4] = (start, end, align, count)
    elif p["workload"] == "hotplug":
        wp[W.WP_ACTION] = 2
        block = p["_memory_block_pages"]
        area = np.array([0, block, p["nr_pages"] // block], dtype=np.int64)
    else:
        area = np.zeros(4, dtype=np.int64)
    cum = np.array([np.cumsum(m) for m in CLASS_ORDER_MIX], dtype=np.float64)
    slots_n = int(normal.zp[C.ZP_LRU_BASE]) or len(normal.owner)    # the workload's (not the LRU's)
    slots = np.arange(slots_n, dtype=np.int32)[::-1].copy()
    queue = W.expiry_queue(slots_n)
    ws = np.zeros(W.WS_SIZE, dtype=np.int64)
    ws[W.WS_FREE_SLOTS] = slots_n
    ws[W.WS_HELD_PFN] = -1
    reasons = np.zeros(16, dtype=np.int64)
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    W.steady_state(node, cc, rng, 0, wp, cum, slots, *queue, ws, reasons, area, 0)
    t0 = _clock()
    code, where = W.steady_state(node, cc, rng, p["ops"], wp, cum, slots, *queue, ws, reasons,
                                 area, p["check_every"])
    times = _since(t0)
    state = _loop_state(node, rng, ws, reasons, *queue, slots, cc)
    if not finish:
        return times, p["ops"], code, where, state
    W.steady_state_drain(node, ws, int(wp[W.WP_ACTION]), area)
    extra.update({"thp_fault_alloc": int(ws[W.WS_THP_FAULT_ALLOC]),
                  "thp_fault_fallback": int(ws[W.WS_THP_FAULT_FALLBACK]),
                  "workload_alloc_failed": int(ws[W.WS_ALLOC_FAILED])})
    if p["workload"] == "cma":
        extra.update({"cma_alloc_success": int(ws[W.WS_ACTION_OK]),
                      "cma_alloc_fail": int(ws[W.WS_ACTIONS] - ws[W.WS_ACTION_OK])})
    if p["workload"] == "hotplug":
        extra.update({"offline_success": int(ws[W.WS_ACTION_OK]),
                      "offline_fail": int(ws[W.WS_ACTIONS] - ws[W.WS_ACTION_OK])})
    return times, p["ops"], code, where, state


def _run_scatterer(node, p, rng, extra, finish=True):
    nr_fill = int(p["fill"] * p["nr_pages"])
    live = np.zeros(max(nr_fill, 1), dtype=np.int32)
    args = (node, rng, nr_fill, p["rounds"], p["free_per_round"], live, p["check_every"])
    _compile(W.scatterer, args)  # compile (or load the cache) before the clock
    t0 = _clock()
    code, where, pipes, freed = W.scatterer(*args)
    times = _since(t0)
    state = _loop_state(node, rng, pipes, freed)
    extra.update({"scatterer_pipes": int(pipes), "scatterer_freed": int(freed)})
    ops = int(sum(int(z.stat[C.ALLOC_OPS]) + int(z.stat[C.FREE_OPS]) for z in node))
    return times, ops, code, where, state


WORKLOAD_RUNNERS = {"smallpages": _run_smallpages, "fragmenter": _run_fragmenter,
                    "mixed": _run_steady_state, "thp": _run_steady_state,
                    "cma": _run_steady_state, "hotplug": _run_steady_state,
                    "scatterer": _run_scatterer}


def _pagecache_slots(p):
    """The page cache's LRU ring: a slot for every page, for the workloads that have page cache."""
    if p["workload"] == "fragmenter" or (p["workload"] in ("mixed", "thp", "cma", "hotplug")
                                         and p["pagecache_fraction"] > 0):
        return p["nr_pages"]
    return 0


def _owner_slots(p):
    if p["workload"] == "fragmenter":
        return int(p["fill"] * p["nr_pages"] * 1.25) + p["holders"] + 1024
    if p["workload"] == "scatterer":
        return int(p["fill"] * p["nr_pages"]) + 1
    if p["workload"] == "smallpages":
        return 0
    return W.live_capacity(p["nr_pages"], p["occupancy"])


# -- timing ---------------------------------------------------------------------------------------
#
# A cell's workload loop shares the machine with other cells: one run of 10-50 ms can wait for a
# core, or be slowed down by a neighbour, for much of its length. Three things make its time per
# operation a measure of the loop rather than of the neighbours:
# - the CPU time of the thread is measured beside the wall-clock time, so that time spent
#   waiting for a core is left out;
# - the workloads are deterministic for a seed, so the loop is run again on a node built afresh
#   (it must leave the same counters, free lists, RNG and workload state behind) and the fastest
#   run is kept;
# - a fixed calibration loop (the smallpages workload on a fixed 16 MiB zone), timed before each
#   run and after the last, gives the machine's speed at that moment: ns_per_op_norm =
#   ns_per_op / calib_ns is the time of an operation in calibration operations, which a machine
#   slower for the whole cell (a busy neighbour core, a lower clock) leaves alone.
#
# The cost: a loop that took more than TIMING_LONG_S of CPU time is timed once (a long loop
# averages over more of the noise, and a repeat would double the cell); a shorter one is run once
# more, and then again while the repeats and calibration have cost less than TIMING_SHARE of the
# first run (node, loop and the work after it), up to TIMING_REPEATS runs. On the laptop sweep
# (1 GiB, 200,000 operations) smallpages and fragmenter loops of 10-20 ms are repeated, mixed
# loops of 50-120 ms are not.

TIMING_REPEATS = 5
TIMING_SHARE = 1.0
TIMING_LONG_S = 0.04
CALIB_PARAMS = {"workload": "smallpages", "memory": "16M", "max_order": 10, "pageblock_order": 9,
                "policy": "v6.15", "pcp": False, "ops": 20_000, "seed": 1, "check_every": 0}
_calib: dict[str, Any] = {}


def _simulate_once(p: dict[str, Any], finish: bool = True, runner=None):
    """Build and boot the node, run the workload: -> (node, extra counters, (wall, CPU) seconds of
    the loop, operations, _loop_state after the loop)."""
    node = build_node(p, _owner_slots(p))
    rng = seed_state(p["seed"])
    extra: dict[str, int] = {}
    times, ops, code, where, state = (runner or WORKLOAD_RUNNERS[p["workload"]])(node, p, rng, extra, finish)
    if code:
        raise SimulationError(f"check_zone failed during the workload: {ERRORS[code]} at pfn {where}")
    return node, extra, times, ops, state


def calibrate() -> float | None:
    """CPU ns per operation of one run of the calibration loop (None without the JIT: the times of
    plain Python say nothing about the model)."""
    if numba.config.DISABLE_JIT:
        return None
    p = _calib.get("params")
    if p is None:
        p = _calib["params"] = resolve(CALIB_PARAMS)
    _, _, (_, cpu), ops, state = _simulate_once(p, finish=False, runner=_run_smallpages)
    if _calib.setdefault("state", state) != state:
        raise SimulationError("the calibration loop left a different state from one run to the next")
    return cpu * 1e9 / ops


def _spread(xs: list[float]) -> float | None:
    return max(xs) / min(xs) if len(xs) > 1 and min(xs) > 0 else None


def timed_workload(p: dict[str, Any], repeats: int | None = None, share: float | None = None,
                   long_s: float | None = None):
    """Run the workload of `p`, then time its loop again on fresh nodes (see above), with the
    calibration loop before each run and after the last; the limits default to TIMING_REPEATS
    (1 without the JIT, whose times say nothing), TIMING_SHARE and TIMING_LONG_S.
    -> (node of the first run, its extra counters, operations, the `timing` dict).

    Raises SimulationError when a repeat leaves a different state from the first run's."""
    if repeats is None:
        repeats = 1 if numba.config.DISABLE_JIT else TIMING_REPEATS
    share = TIMING_SHARE if share is None else share
    long_s = TIMING_LONG_S if long_s is None else long_s
    start = time.perf_counter()
    calib = [calibrate()]
    t0 = time.perf_counter()
    node, extra, times, ops, state = _simulate_once(p)
    first_s = time.perf_counter() - t0
    runs = [times]
    last = 0.0

    def spent() -> float:
        return time.perf_counter() - start - first_s

    while (ops and times[1] <= long_s and len(runs) < repeats
           and (len(runs) == 1 or spent() + last <= share * first_s)):
        t1 = time.perf_counter()
        calib.append(calibrate())
        _, _, times_r, ops_r, state_r = _simulate_once(p, finish=False)
        if ops_r != ops or state_r != state:
            raise SimulationError(f"timing run {len(runs) + 1} of the workload left other counters or state "
                                  "than the first: the workload is not deterministic for its seed")
        runs.append(times_r)
        last = time.perf_counter() - t1
    calib.append(calibrate())
    repeat_s = spent()
    cpu = [c * 1e9 / ops if ops else 0.0 for _, c in runs]
    calib = [c for c in calib if c is not None]
    calib_ns = min(calib) if calib else None
    ns = min(cpu)
    wall = min(w for w, _ in runs)
    timing = {
        "wall_s": wall,                          # the fastest run of the workload loop, wall clock
        "cpu_s": min(c for _, c in runs),        # the least CPU time of a run
        "ns_per_op": ns,                         # the same per operation
        "ns_per_op_wall": wall * 1e9 / ops if ops else 0.0,
        "repeats": len(runs),                    # runs of the loop timed
        "ns_per_op_runs": cpu,                   # CPU ns per operation of each, in order
        "ns_per_op_spread": _spread(cpu),        # slowest / fastest (None when timed once)
        "calib_ns": calib_ns,                    # fastest run of the calibration loop, CPU ns per operation
        "calib_spread": _spread(calib),          # its slowest / fastest
        "ns_per_op_norm": ns / calib_ns if calib_ns and ns else None,
        "repeat_s": repeat_s,                    # seconds the repeats and the calibration added to the cell
    }
    return node, extra, ops, timing


def run(raw: dict[str, Any], node_out: list | None = None, zone_map: bool = False) -> dict[str, Any]:
    """Resolve `raw` parameters, simulate, and return the result object of `farm simulate --json`.
    With `zone_map`, the result also holds the zone map of the state the workload leaves, before
    the probes ('zone_map': farm.real.zonemap.encode_zone_map; sweeps keep it for their report)."""
    p = resolve(raw)
    node, extra, ops, timing = timed_workload(p)
    if p["check_every"]:
        check_zone(node)
    out = {
        "params": public(p),
        "model_version": MODEL_VERSION,
        "counters": {name: int(sum(int(z.stat[i]) for z in node)) for name, i in REPORTED_COUNTERS.items()},
    }
    out["counters"].update(extra)
    out.update(metrics(node))
    out["timing"] = timing
    if zone_map:
        from ..real.zonemap import encode_zone_map, model_zone_map
        encoded = encode_zone_map(model_zone_map(node))
        if encoded is not None:
            out["zone_map"] = encoded
    if p["probe"]:
        cc = np.zeros(C.CC_SIZE, dtype=np.int64)
        bitmap = np.zeros(max(p["_cma_pages"], 1), dtype=np.int64)
        t0 = time.perf_counter()
        out["probes"] = run_probes(node, p["probe"], p, cc, bitmap)
        out["timing"]["probes_s"] = time.perf_counter() - t0
        if p["check_every"]:
            check_zone(node)
    if node_out is not None:
        node_out.append(node)
    return out


def format_buddyinfo(buddyinfo: list[int], zone_name: str = "Normal") -> str:
    """The /proc/buddyinfo line of the zone (mm/vmstat.c frag_show_print)."""
    return f"Node 0, zone {zone_name:>8s} " + "".join(f"{n:6d} " for n in buddyinfo)
