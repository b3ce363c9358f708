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

from .cell.params import WORKLOADS
from .cell.simulate import run


def machine_info() -> dict[str, Any]:
    import numba
    import numpy
    return {"python": platform.python_version(), "numba": numba.__version__, "numpy": numpy.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}


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


def bench_sweep(path: str, workers=(1, 2), cells: int | None = None) -> list[dict[str, Any]]:
    """Run a sweep (or its first `cells` cells) on an embedded Ray with 1 and then 2 workers,
    each into a fresh temporary folder, and time the compute phase (first task submitted to last
    result stored; Ray's start and the numba warm-up are reported apart)."""
    import dataclasses
    import tempfile

    from .sweep.plan import load_plan
    from .sweep.runner import run_sweep

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
from farm.cell.simulate import run
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
    """Events per second of `farm.real.trace.parse_trace` on a real-kernel trace: the first parse in the
    process (cold: imports, fresh memory) is timed apart, then the median of `repeats`, with the
    default threads and with one."""
    from .real.trace import _workers, parse_trace
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


# -- the suite (`farm bench`): every section, one JSON and one Markdown file ------------------------

POLICY_NAMES = ("v5.4", "v6.1", "v6.10", "v6.15", "v6.16", "v6.17", "nomobility")
SECTIONS = ("throughput", "reference", "memory", "cold_start", "sweep", "trace")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SWEEP = os.path.join(_ROOT, "sweeps", "laptop.toml")
DEFAULT_TRACE = os.path.join(os.path.dirname(_ROOT), "shared", "data", "kernel-6.1-fragmenter-2560m")


def bench_throughput(quick: bool = False, repeats: int = 3) -> list[dict[str, Any]]:
    """Operations per second of each workload at 4 GiB, max_order 10 and 18, every policy (a
    smallpages or fragmenter operation is one allocation or free; a steady-state operation, of
    mixed, thp, cma and hotplug, is one step of the engine: the frees due, then one allocation
    or reclaim free, and the periodic action's share; probes are not timed)."""
    memory = "64M" if quick else "4G"
    ops = 20_000 if quick else 1_000_000
    policies = ("v6.15",) if quick else POLICY_NAMES
    max_orders = (10, 14) if quick else (10, 18)
    repeats = 1 if quick else repeats
    rows = []
    for workload in WORKLOADS:
        # the cma workload needs a CMA area: a sixteenth of memory
        cma = {"cma_size": "4M" if workload == "cma" else "0"}
        run({"workload": workload, "memory": "64M", "ops": 2000, "seed": 1, **cma})  # numba warm-up
        if workload == "cma":
            cma["cma_size"] = "4M" if quick else "256M"
        for policy in policies:
            base = None
            for max_order in max_orders:
                params = {"workload": workload, "memory": memory, "max_order": max_order,
                          "policy": policy, "seed": 1, **cma}
                if workload != "fragmenter":
                    params["ops"] = ops
                results = [run(params) for _ in range(repeats)]
                samples = [r["timing"]["ns_per_op"] for r in results]
                ns = statistics.median(samples)
                done = results[0]["counters"]["alloc_ops"] + results[0]["counters"]["free_ops"]
                base = base or ns
                rows.append({"benchmark": "throughput", "workload": workload, "memory": memory,
                             "max_order": max_order, "policy": policy, "ops": params.get("ops", done),
                             "allocs_and_frees": done, "repeats": repeats,
                             "ns_per_op": round(ns, 1), "mops_per_s": round(1e3 / ns, 2),
                             "ratio_vs_max_order_10": round(ns / base, 3)})
    return rows


def _reference_zone():
    import sys
    tests = os.path.join(_ROOT, "tests")
    if not os.path.exists(os.path.join(tests, "reference.py")):
        return None
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from reference import RefZone
    return RefZone


def op_sequence(n: int, nr_pages: int, occupancy: float = 0.5, seed: int = 1):
    """A smallpages-like sequence: allocate (order 0) below the occupancy target with p = 3/4,
    free a random live block above it with p = 3/4."""
    import numpy as np
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    victims = rng.integers(0, 1 << 31, n, dtype=np.int64)
    is_alloc = np.zeros(n, dtype=np.bool_)
    live, target = 0, int(occupancy * nr_pages)
    for i in range(n):
        a = live == 0 or (u[i] < 0.75 if live < target else u[i] < 0.25)
        is_alloc[i] = a
        live += 1 if a else -1
    return is_alloc, np.zeros(n, dtype=np.int64), victims


def bench_reference(quick: bool = False, repeats: int = 3) -> list[dict[str, Any]]:
    """The same operation sequence through the numba model and the pure-Python reference model
    (tests/reference.py): ns per operation of each, the speed-up, and whether every pfn agreed."""
    import numpy as np

    from kernels import constants as C
    from kernels.page_alloc import boot_node
    from kernels.workloads import run_ops
    from kernels.zone import make_node
    RefZone = _reference_zone()
    if RefZone is None:
        return [{"benchmark": "reference", "note": "tests/reference.py is not beside the package"}]
    nr_pages = 1 << 14                      # 64 MiB
    n = 5_000 if quick else 200_000
    is_alloc, orders, victims = op_sequence(n, nr_pages)
    rows = []
    for max_order in (10, 18) if not quick else (10,):
        mo = min(max_order, 14)
        samples, out = [], None
        for _ in range(1 + (1 if quick else repeats)):
            node = make_node(nr_pages, mo, 9)
            boot_node(node)
            out = np.zeros(n, dtype=np.int64)
            live = np.zeros(n, dtype=np.int64)
            t0 = time.perf_counter()
            run_ops(node, is_alloc, orders, victims, C.MIGRATE_MOVABLE, live, out)
            samples.append(time.perf_counter() - t0)
        model_ns = statistics.median(samples[1:]) * 1e9 / n
        ref = RefZone(nr_pages, mo, 9)
        ref_out = np.zeros(n, dtype=np.int64)
        lv: list[int] = []
        t0 = time.perf_counter()
        for i in range(n):
            if is_alloc[i] or not lv:
                pfn = ref.alloc(0, C.MIGRATE_MOVABLE)
                ref_out[i] = pfn
                if pfn >= 0:
                    lv.append(pfn)
            else:
                k = int(victims[i]) % len(lv)
                pfn = lv[k]
                lv[k] = lv[-1]
                lv.pop()
                ref_out[i] = pfn
                ref.free(pfn)
        ref_ns = (time.perf_counter() - t0) * 1e9 / n
        rows.append({"benchmark": "reference", "memory": "64M", "max_order": mo, "ops": n,
                     "model_ns_per_op": round(model_ns, 1), "reference_ns_per_op": round(ref_ns, 1),
                     "speedup": round(ref_ns / model_ns, 1), "same_pfns": bool((out == ref_out).all())})
    return rows


_MEMORY_SCRIPT = """
import json, resource, sys, time
from kernels.page_alloc import boot_node
from kernels.zone import make_node, state_bytes_per_page
make_node(1 << 12, 10, 9); boot_node(make_node(1 << 12, 10, 9))   # numba cache
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
node = make_node(int(sys.argv[1]), 10, 9)
boot_node(node)
boot = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"bytes_per_page": state_bytes_per_page(node), "base_rss_kb": base,
                  "peak_rss_kb": peak, "build_boot_s": boot}))
"""


def bench_memory(quick: bool = False) -> list[dict[str, Any]]:
    """Bytes of model state per simulated page, and the peak RSS of a process that builds and
    boots a zone of each size (over the RSS it had before: interpreter, numpy, numba)."""
    import subprocess
    import sys
    sizes = (("64M", 1 << 14), ("1G", 1 << 18)) if quick else (
        ("16G", 1 << 22), ("256G", 1 << 26), ("1T", 1 << 28))
    rows = []
    for name, pages in sizes:
        r = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(pages)], capture_output=True,
                           text=True, cwd=_ROOT)
        if r.returncode:
            rows.append({"benchmark": "memory", "zone": name, "pages": pages, "error": r.stderr[-300:]})
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        grown = (m["peak_rss_kb"] - m["base_rss_kb"]) * 1024
        rows.append({"benchmark": "memory", "zone": name, "pages": pages,
                     "state_bytes_per_page": round(m["bytes_per_page"], 2),
                     "state_mib": round(m["bytes_per_page"] * pages / 2**20, 1),
                     "peak_rss_mib": round(m["peak_rss_kb"] / 1024, 1),
                     "rss_growth_bytes_per_page": round(grown / pages, 2),
                     "build_boot_s": round(m["build_boot_s"], 2)})
    return rows


_COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from farm.sweep.plan import load_plan
from farm.sweep.warmup import compile_model, compile_units
imported = time.perf_counter() - t0
params = [c.run_params for c in load_plan(sys.argv[1]).cells]
units = compile_units(params)
report = compile_model(units, progress=False)
print(json.dumps({"import_s": imported, "warm_up_s": report.seconds, "kinds": len(units)}))
"""

_RAY_SCRIPT = """
import json, sys, time
import ray
from farm.sweep.plan import load_plan
from farm.sweep.warmup import compile_units, warm_up
cells = [u.params for u in compile_units([c.run_params for c in load_plan(sys.argv[1]).cells])]
t0 = time.perf_counter()
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
start = time.perf_counter() - t0
task = ray.remote(warm_up)
first = [t for t, _ in ray.get([task.remote(cells) for _ in range(2)])]
again = [t for t, _ in ray.get([task.remote(cells) for _ in range(2)])]
ray.shutdown()
print(json.dumps({"ray_start_s": start, "worker_first_s": first, "worker_again_s": again}))
"""


def bench_cold_start(sweep: str = DEFAULT_SWEEP) -> list[dict[str, Any]]:
    """numba compile time on first use (a fresh cache: every code path of the sweep's kinds of
    cell), the same with the cache warm, Ray's start, and in Ray workers (warm cache) the first
    and a second run of the same warm-up: no compilation happens in a worker."""
    import subprocess
    import sys
    import tempfile
    rows = []
    with tempfile.TemporaryDirectory(prefix="farm-bench-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold (empty numba cache)", "warm (cache on disk)"):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", _COLD_SCRIPT, sweep], capture_output=True,
                               text=True, env=env, cwd=_ROOT)
            wall = time.perf_counter() - t0
            if r.returncode:
                rows.append({"benchmark": "cold start", "case": label, "error": r.stderr[-300:]})
                continue
            m = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append({"benchmark": "cold start", "case": label, "process_wall_s": round(wall, 2),
                         "import_s": round(m["import_s"], 2), "compile_or_load_s": round(m["warm_up_s"], 2),
                         "cell_kinds": m["kinds"]})
        r = subprocess.run([sys.executable, "-c", _RAY_SCRIPT, sweep], capture_output=True, text=True,
                           env=env, cwd=_ROOT)
        if r.returncode:
            rows.append({"benchmark": "cold start", "case": "ray", "error": r.stderr[-300:]})
        else:
            m = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append({"benchmark": "cold start", "case": "ray start (embedded, 2 CPUs)",
                         "process_wall_s": None, "import_s": None,
                         "compile_or_load_s": round(m["ray_start_s"], 2), "cell_kinds": None})
            for i, (a, b) in enumerate(zip(m["worker_first_s"], m["worker_again_s"])):
                rows.append({"benchmark": "cold start", "case": f"ray worker {i + 1}: first warm-up, then again",
                             "process_wall_s": None, "import_s": None,
                             "compile_or_load_s": f"{a:.2f} / {b:.2f}", "cell_kinds": None})
    return rows


def bench_replay(capture: str, repeats: int = 3) -> list[dict[str, Any]]:
    """Pinned replay of a capture to its end: events per second of the replay loop."""
    from .real.captures import read_capture
    from .real.replay import load_events, replay, zone_starts
    cap = read_capture(capture)
    events = load_events(cap["trace"], zones=zone_starts(cap))
    replay(None, events=events, capture=cap)                       # warm-up
    samples = [replay(None, events=events, capture=cap)["timing"] for _ in range(repeats)]
    wall = statistics.median(t["replay_s"] for t in samples)
    n = len(events)
    return [{"benchmark": "pinned replay", "trace": os.path.basename(capture.rstrip("/")),
             "events": n, "repeats": repeats, "wall_s": round(wall, 3),
             "events_per_s": round(n / wall), "initial_state_s": round(samples[0]["initial_state_s"], 2)}]


def suite(sections=SECTIONS, quick: bool = False, sweep: str = DEFAULT_SWEEP,
          trace: str | None = None) -> dict[str, Any]:
    """Run the chosen sections; -> {'machine': ..., 'sections': {name: rows}, 'notes': [...]}."""
    out: dict[str, Any] = {"machine": machine_info(), "quick": quick, "sections": {}, "notes": []}
    trace = trace if trace is not None else (DEFAULT_TRACE if os.path.isdir(DEFAULT_TRACE) else None)
    for name in sections:
        t0 = time.perf_counter()
        if name == "throughput":
            rows = bench_throughput(quick)
        elif name == "reference":
            rows = bench_reference(quick)
        elif name == "memory":
            rows = bench_memory(quick)
        elif name == "cold_start":
            rows = bench_cold_start(sweep)
        elif name == "sweep":
            rows = bench_sweep(sweep, cells=8 if quick else None)
            ceiling = machine_scaling(ops=20_000 if quick else 300_000)
            for r in rows:
                r["machine_scaling"] = round(ceiling, 3)
        elif name == "trace":
            if trace is None:
                out["notes"].append("trace: no trace given and ../shared/data is not here; skipped")
                continue
            path = trace
            if os.path.isdir(trace):
                path = next((os.path.join(trace, n) for n in ("trace.txt.gz", "trace.txt")
                             if os.path.exists(os.path.join(trace, n))), trace)
            rows = bench_trace(path, repeats=1 if quick else 3)
            if os.path.isdir(trace):
                rows += bench_replay(trace, repeats=1 if quick else 3)
        else:
            raise ValueError(f"unknown benchmark section {name!r}; sections: {', '.join(SECTIONS)}")
        out["sections"][name] = rows
        print(f"[{name}: {time.perf_counter() - t0:.1f} s]", flush=True)
    return out


def format_suite(result: dict[str, Any]) -> str:
    parts = [f"machine: {result['machine']}"]
    for name, rows in result["sections"].items():
        parts.append(f"\n### {name}\n")
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        parts.append(to_markdown([{k: r.get(k, "") for k in keys} for r in rows]))
    parts += [f"\n{n}" for n in result["notes"]]
    return "\n".join(parts) + "\n"


def main(out_json: str | None, quick: bool, sections=SECTIONS, sweep: str = DEFAULT_SWEEP,
         trace: str | None = None) -> int:
    result = suite(sections, quick, sweep, trace)
    text = format_suite(result)
    print(text)
    if out_json:
        with open(out_json, "w") as f:
            json.dump(result, f, indent=2)
        with open(os.path.splitext(out_json)[0] + ".md", "w") as f:
            f.write(text)
    return 0
