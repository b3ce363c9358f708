"""`farm bench`: measured numbers, recorded, never asserted.

Each figure is the median of several runs after a warm-up run (which also loads or compiles the
numba cache); comparisons are ratios measured in the same process.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Any

from .simulate import run


def machine_info() -> dict[str, Any]:
    import numba
    import numpy
    return {"python": platform.python_version(), "numba": numba.__version__, "numpy": numpy.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}


def bench_smallpages(memory: str = "4G", max_orders=(10, 18), ops: int = 1_000_000,
                     repeats: int = 5, policy: str = "v6.15") -> list[dict[str, Any]]:
    """Model throughput of `smallpages` (the workload's main loop; the final free-all is not timed)."""
    rows = []
    for max_order in max_orders:
        params = {"memory": memory, "max_order": max_order, "ops": ops, "policy": policy,
                  "workload": "smallpages", "seed": 1}
        run({**params, "ops": min(ops, 10_000)})  # warm-up: numba cache
        samples = [run(params)["timing"]["ns_per_op"] for _ in range(repeats)]
        ns = statistics.median(samples)
        rows.append({"benchmark": "smallpages", "memory": memory, "max_order": max_order,
                     "policy": policy, "ops": ops, "repeats": repeats, "ns_per_op": round(ns, 1),
                     "mops_per_s": round(1e3 / ns, 2), "min_ns": round(min(samples), 1),
                     "max_ns": round(max(samples), 1)})
    base = rows[0]["ns_per_op"]
    for r in rows:
        r["ratio_vs_first"] = round(r["ns_per_op"] / base, 3)
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def record(rows: list[dict[str, Any]], out_json: str | None) -> int:
    """Print the results with the machine info; with out_json also write JSON and Markdown."""
    info = machine_info()
    print(f"machine: {info}")
    print(to_markdown(rows))
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"machine": info, "results": rows}, f, indent=2)
        with open(os.path.splitext(out_json)[0] + ".md", "w") as f:
            f.write(f"machine: {info}\n\n{to_markdown(rows)}\n")
    return 0


def main(out_json: str | None, quick: bool) -> int:
    if quick:
        rows = bench_smallpages(memory="64M", max_orders=(10, 14), ops=20_000, repeats=2)
    else:
        rows = bench_smallpages()
    return record(rows, out_json)


def bench_sweep(path: str, workers=(1, 2), cells: int | None = None) -> list[dict[str, Any]]:
    """Run a sweep (or its first `cells` cells) on an embedded Ray with 1 and then 2 workers,
    each into a fresh temporary folder, and time the compute phase (first task submitted to last
    result stored; Ray's start and the numba warm-up are reported apart)."""
    import dataclasses
    import tempfile

    from .runner import run_sweep
    from .sweep import load_plan

    plan = load_plan(path)
    if cells:
        plan = dataclasses.replace(plan, cells=plan.cells[:cells])
    rows = []
    for n in workers:
        with tempfile.TemporaryDirectory(prefix="farm-bench-") as out:
            s = run_sweep(plan, out, workers=n, progress=False)
        if s.status != "complete" or s.computed != len(plan.cells):
            raise RuntimeError(f"bench run with {n} workers did not finish: {s.status}, "
                               f"{s.computed} of {len(plan.cells)} cells")
        rows.append({"benchmark": f"sweep {plan.name}", "cells": s.computed, "workers": n,
                     "batches": s.batches, "compute_s": round(s.compute_s, 2),
                     "cells_per_min": round(60 * s.computed / s.compute_s, 1),
                     "ray_start_s": round(s.ray_start_s, 2), "wall_s": round(s.wall_s, 2),
                     "errors": s.errors})
    t1 = rows[0]["compute_s"]
    for r in rows:
        r["efficiency"] = round(t1 / (r["workers"] * r["compute_s"]), 3)
    return rows


_SCALING_LOOP = """
import sys, time
from farm.simulate import run
params = {"memory": "64M", "ops": int(sys.argv[1])}
run({**params, "ops": 1000})
t0 = time.perf_counter()
for _ in range(3):
    run(params)
print(time.perf_counter() - t0)
"""


def machine_scaling(processes: int = 2, ops: int = 300_000) -> float:
    """What the machine itself gives: the same model loop in 1 process, then in `processes`
    processes at once, without Ray; -> t1 / t_n (1.0 = perfect scaling). The ceiling of a
    sweep's parallel efficiency (cores that are SMT siblings, or a CPU quota, give less)."""
    import subprocess
    import sys

    def timed(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", _SCALING_LOOP, str(ops)], stdout=subprocess.PIPE,
                                  text=True) for _ in range(n)]
        return statistics.mean(float(p.communicate()[0]) for p in procs)

    return timed(1) / timed(processes)


def sweep_main(path: str, out_json: str | None, quick: bool, cells: int | None) -> int:
    rows = bench_sweep(path, cells=cells or (8 if quick else None))
    ceiling = machine_scaling(ops=20_000 if quick else 300_000)
    info = machine_info()
    print(f"machine: {info}")
    print(to_markdown(rows))
    n = rows[-1]["workers"]
    eff = rows[-1]["efficiency"]
    summary = (f"parallel efficiency, {n} workers vs 1: {eff:.3f} (t1 / ({n} t2)); the machine's own "
               f"scaling, the same model loop in 1 and {n} plain processes: {ceiling:.3f}")
    print(summary)
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"machine": info, "results": rows, "efficiency": eff,
                       "machine_scaling": round(ceiling, 3)}, f, indent=2)
        with open(os.path.splitext(out_json)[0] + ".md", "w") as f:
            f.write(f"machine: {info}\n\n{to_markdown(rows)}\n\n{summary}\n")
    return 0


def bench_trace(path: str, repeats: int = 3, workers=(None, 1)) -> list[dict[str, Any]]:
    """Events per second of `farm.trace.parse_trace` on a real-kernel trace: the first parse in the
    process (cold: imports, fresh memory) is timed apart, then the median of `repeats`, with the
    default threads and with one."""
    from .trace import _workers, parse_trace
    rows = []
    t0 = time.perf_counter()
    events = parse_trace(path).num_rows
    cold = time.perf_counter() - t0
    for w in workers:
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            n = parse_trace(path, workers=w).num_rows
            samples.append(time.perf_counter() - t0)
            assert n == events
        wall = statistics.median(samples)
        rows.append({"benchmark": "trace parse", "trace": os.path.basename(os.path.dirname(path)) or path,
                     "threads": w or _workers(), "events": events, "repeats": repeats,
                     "wall_s": round(wall, 3), "events_per_s": round(events / wall),
                     "min_s": round(min(samples), 3), "max_s": round(max(samples), 3),
                     "cold_s": round(cold, 3) if w is None else None})
    return rows


def trace_main(path: str, out_json: str | None, quick: bool) -> int:
    rows = bench_trace(path, repeats=1 if quick else 3)
    return record(rows, out_json)
