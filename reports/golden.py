"""A small fixed result set and the golden files made from it.

`golden_frame()` is a results DataFrame shaped like `farm.load` returns (key columns, every
parameter, metrics, probes, provenance) with values made up by formula: two policies, max_order
10 and 12, three seeds, two probes, and one cell stored as an error. Its report and comparison
are pinned in tests/golden/; a change to the reports that changes them shows up as a test
failure, and the files are refreshed only on purpose, with

    python -m reports.golden            # rewrite tests/golden/report.md and compare.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden"
SOURCE = "runs/golden"
MANIFEST = {"format": 1, "sweeps": {"golden": {
    "sweep": "golden", "file": "sweeps/golden.toml", "model_version": "0.0-golden", "cells": 12,
    "description": "A fixed result set for the golden report"}}}
PROBES = ("contig:size=2M,isolation=pageblock,attempts=8; contig:size=2M,isolation=maxorder,attempts=8; "
          "hugepages:order=9,count=8")
PARAMS = {
    "memory": "64M", "max_order": 10, "pageblock_order": 9, "section_bits": 27, "memory_block_size": None,
    "vmemmap": True, "holes": "", "policy": "v6.15", "pcp": False, "min_free_kbytes": None,
    "isolation": "pageblock", "movable_fraction": 0.0, "cma_size": "0", "workload": "smallpages",
    "ops": 1000, "seed": 1, "occupancy": 0.5, "order_mix": "0=1", "migratetype": "movable", "mix": None,
    "lifetime": None, "thp_fraction": None, "pinned_fraction": 0.0, "period": 2000, "hold": 1000,
    "cma_chunk": "4M", "fill": 0.43, "holders": None, "keep_files": 4, "probe": PROBES, "check_every": 0,
    "nr_pages": 16384,
}


def _cell(policy: str, max_order: int, seed: int) -> dict:
    d = max_order - 10
    v15 = policy == "v6.15"
    row = {"cell_id": f"{policy}-{max_order}-{seed}", "sweep": "golden", "model_version": "0.0-golden",
           "status": "ok", "error": None}
    row.update(PARAMS)
    row.update({"policy": policy, "max_order": max_order, "seed": seed})
    unmovable = 2 + d + (1 if v15 else 0)
    row.update({
        "alloc_ops": 1000, "alloc_fail": 0, "free_ops": 1000,
        "split_steps": 400 + 10 * d + seed + (5 if v15 else 0),
        "merge_steps": 398 + 10 * d + seed,
        "orders_scanned": 1200 + 20 * d + 2 * seed + (0 if v15 else 30),
        "fallback_claim": 4 + seed - d, "fallback_steal": 0, "compact_stall": 0,
        "max_split_steps": max_order, "max_merge_steps": max_order,
        "max_orders_scanned": max_order + 1 + (seed % 2),
        "pagetypeinfo_blocks_Unmovable": unmovable, "pagetypeinfo_blocks_Movable": 32 - unmovable,
        "pagetypeinfo_blocks_Reclaimable": 0,
        "pagetypeinfo_mixed_blocks_Unmovable": 1 if seed == 2 else 0, "pagetypeinfo_mixed_blocks_Movable": 0,
        "unusable_index": [0] * 9 + [100 + 10 * d + seed] + [200] * (max_order - 9),
        "extfrag_index": [-1000] * (max_order + 1),
        "timing_ns_per_op": 100.0 + 5 * d + 2 * seed + (10 if v15 else 0),
        # three timing repeats; the calibration loop ran slower in the max_order 12 cells, so the
        # normalised time hardly changes with max_order
        "timing_ns_per_op_wall": 101.0 + 5 * d + 2 * seed + (10 if v15 else 0),
        "timing_repeats": 3, "timing_ns_per_op_spread": 1.04 + 0.01 * seed,
        "timing_calib_ns": 40.0 + 2 * d, "timing_calib_spread": 1.02,
        "timing_ns_per_op_norm": (100.0 + 5 * d + 2 * seed + (10 if v15 else 0)) / (40.0 + 2 * d),
    })
    ok_pb = 8 - (seed % 2)
    ok_mo = 8 - 2 * d - (seed % 2) - (1 if v15 else 0)
    huge = 8 - d // 2
    for i, (regime, ok) in enumerate((("pageblock", ok_pb), ("maxorder", ok_mo))):
        row.update({f"probe{i}_contig_params_size": "2M", f"probe{i}_contig_params_isolation": regime,
                    f"probe{i}_contig_params_attempts": 8, f"probe{i}_contig_asked": 8,
                    f"probe{i}_contig_obtained": ok, f"probe{i}_contig_success_rate": ok / 8,
                    f"probe{i}_contig_pages_migrated": 100 * ok,
                    f"probe{i}_contig_fail_unmovable_in_range": 8 - ok})
    row.update({"probe2_hugepages_params_order": 9, "probe2_hugepages_params_count": 8,
                "probe2_hugepages_asked": 8, "probe2_hugepages_obtained": huge,
                "probe2_hugepages_success_rate": huge / 8, "probe2_hugepages_pages_migrated": 0,
                "probe2_hugepages_fail_no_free_block_after_compaction": 8 - huge})
    row.update({"cell_s": 0.1, "finished_at": pd.Timestamp("2026-01-01", tz="UTC"), "run_id": "golden",
                "host": "golden", "node": "golden", "pid": 1})
    return row


def golden_frame() -> pd.DataFrame:
    """The fixed result set: 12 cells, the last one (v6.15, max_order 12, seed 3) an error."""
    rows = [_cell(p, m, s) for p in ("v6.1", "v6.15") for m in (10, 12) for s in (1, 2, 3)]
    err = {k: v for k, v in rows[-1].items()
           if k in ("cell_id", "sweep", "model_version", "cell_s", "finished_at", "run_id", "host", "node", "pid")
           or k in PARAMS}
    err.update({"status": "error", "error": "SimulationError: check_zone failed (made up for the golden file)"})
    rows[-1] = err
    return pd.DataFrame(rows)


def golden_markdown() -> str:
    from .render import figure_paths, to_markdown
    from .report import build_report
    doc = build_report(golden_frame(), SOURCE, MANIFEST)
    return to_markdown(doc, figure_paths(doc, "report"))


def golden_compare() -> str:
    from . import compare as C
    base, other = C.split_axis(golden_frame(), "policy=v6.1,v6.15", SOURCE, MANIFEST)
    return C.text_table(C.compare(base, other, exclude=["policy"]))


def main(argv: list[str] | None = None) -> int:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in (("report.md", golden_markdown()), ("compare.txt", golden_compare())):
        (GOLDEN_DIR / name).write_text(text)
        print(f"wrote {GOLDEN_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
