"""One simulation: build the zone, boot it, run the workload, collect the metrics.

This is what a sweep cell runs; it returns plain Python data (JSON-ready).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from kernels import MODEL_VERSION
from kernels import constants as C
from kernels.check import ERRORS, check_zone
from kernels.page_alloc import boot_node
from kernels.rng import seed_state
from kernels.vmstat import extfrag_index, pagetypeinfo_blocks, pagetypeinfo_free, unusable_index
from kernels.workloads import free_all, live_capacity, smallpages
from kernels.zone import make_node

from .params import MIGRATETYPE_CHOICES, public, resolve

# Counters reported in `counters`, by output name.
REPORTED_COUNTERS = {
    "alloc_ops": C.ALLOC_OPS, "alloc_fail": C.ALLOC_FAIL, "free_ops": C.FREE_OPS,
    "split_steps": C.SPLIT_STEPS, "merge_steps": C.MERGE_STEPS,
    "orders_scanned": C.ORDERS_SCANNED, "wmark_orders_scanned": C.WMARK_ORDERS_SCANNED,
    "fallback_claim": C.FALLBACK_CLAIM, "fallback_steal": C.FALLBACK_STEAL,
    "pgalloc_normal": C.PGALLOC, "pgfree": C.PGFREE,
    "pcp_refills": C.PCP_REFILLS, "pcp_drains": C.PCP_DRAINS,
}


class SimulationError(RuntimeError):
    """The model broke one of its own invariants (a bug in the model, not in the input)."""


def build_node(p: dict[str, Any]):
    memory_block_bits = None
    if p["memory_block_size"] is not None:
        from .params import parse_size
        memory_block_bits = parse_size(p["memory_block_size"]).bit_length() - 1
    node = make_node(p["nr_pages"], p["max_order"], p["pageblock_order"], p["policy"],
                     p["_holes_pfn"], p["pcp"], p["min_free_kbytes"], p["section_bits"],
                     memory_block_bits)
    boot_node(node)
    return node


def _order_weights(mix: str) -> np.ndarray:
    w = np.zeros(4, dtype=np.float64)
    for part in mix.split(","):
        o, x = part.split("=")
        w[int(o)] = float(x)
    return np.cumsum(w)


def metrics(node) -> dict[str, Any]:
    """buddyinfo, pagetypeinfo and the fragmentation indices of the current state."""
    z = node[0]
    names = C.MIGRATETYPE_NAMES
    free = pagetypeinfo_free(z)
    blocks, mixed = pagetypeinfo_blocks(z)
    nr_free = z.nr_free.copy()
    return {
        "buddyinfo": [int(x) for x in nr_free],
        "nr_free_pages": int(z.stat[C.NR_FREE_PAGES]),
        "pagetypeinfo": {
            "free": {names[t]: [int(x) for x in free[t]] for t in range(C.MIGRATE_TYPES)},
            "blocks": {names[t]: int(blocks[t]) for t in range(C.MIGRATE_TYPES)},
            "mixed_blocks": {names[t]: int(mixed[t]) for t in range(C.MIGRATE_TYPES)},
        },
        "unusable_index": unusable_index(nr_free),
        "extfrag_index": extfrag_index(nr_free),
    }


def run(raw: dict[str, Any], zone_out: list | None = None) -> dict[str, Any]:
    """Resolve `raw` parameters, simulate, and return the result object of `farm simulate --json`."""
    p = resolve(raw)
    node = build_node(p)
    rng = seed_state(p["seed"])
    live = np.zeros(live_capacity(p["nr_pages"], p["occupancy"]), dtype=np.int32)
    mt = MIGRATETYPE_CHOICES[p["migratetype"]]
    weights = _order_weights(p["order_mix"])
    # Compile (or load from the cache) before the clock starts: a zero-operation call.
    smallpages(node, rng, 0, p["occupancy"], weights, mt, live, 0)
    t0 = time.perf_counter()
    nlive, code, where = smallpages(node, rng, p["ops"], p["occupancy"], weights, mt, live,
                                    p["check_every"])
    wall = time.perf_counter() - t0
    if code:
        raise SimulationError(f"check_zone failed during the workload: {ERRORS[code]} at pfn {where}")
    free_all(node, live, nlive)
    if p["check_every"]:
        check_zone(node)
    out = {
        "params": public(p),
        "model_version": MODEL_VERSION,
        "counters": {name: int(sum(z.stat[i] for z in node)) for name, i in REPORTED_COUNTERS.items()},
    }
    out.update(metrics(node))
    out["timing"] = {"wall_s": wall, "ns_per_op": wall * 1e9 / p["ops"] if p["ops"] else 0.0}
    if zone_out is not None:
        zone_out.append(node)
    return out


def format_buddyinfo(buddyinfo: list[int], zone_name: str = "Normal") -> str:
    """The /proc/buddyinfo line of the zone (mm/vmstat.c frag_show_print)."""
    return f"Node 0, zone {zone_name:>8s} " + "".join(f"{n:6d} " for n in buddyinfo)
