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


def main(out_json: str | None, quick: bool) -> int:
    if quick:
        rows = bench_smallpages(memory="64M", max_orders=(10, 14), ops=20_000, repeats=2)
    else:
        rows = bench_smallpages()
    info = machine_info()
    print(f"machine: {info}")
    print(to_markdown(rows))
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"machine": info, "results": rows}, f, indent=2)
        with open(os.path.splitext(out_json)[0] + ".md", "w") as f:
            f.write(f"machine: {info}\n\n{to_markdown(rows)}\n")
    return 0
