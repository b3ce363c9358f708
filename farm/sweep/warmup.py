"""Compiling the model before a sweep: numba compiles each jitted entry point on first use and
caches it on disk (kernels: `cache=True`, one cache folder per state of the model's sources).

The first run on a machine compiles; later runs load the cache. `compile_model` compiles what the
planned cells use, in parallel processes, with a progress line, before any Ray worker starts, so
no two workers compile the same code at the same time:

- The cells are reduced to compile units: one tiny cell per workload (and per node shape: each
  number of zones is another type), without probes, and one tiny cell with
  every probe the plan asks for. Each unit takes the code paths of its kind.
- The units run in a pool of processes (one per core by default), longest first. Every unit
  compiles the allocator core it shares with the others, in parallel, instead of waiting for one
  process to write it: with no more processes than cores that costs processor time, not wall time.
- A unit that completed leaves a mark in the cache folder, so a later run with a warm cache skips
  the pool altogether (starting processes costs a second or two). The mark keeps how long the unit
  took.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

WARM_OPS = 20_000

# For the expected time in the progress line, measured on the 2-core reference machine (model
# 0.12.0, each unit alone in a process after the core): every process first compiles the allocator
# core the units share (CORE_S), then each unit what is its own (EXPECTED_S; a unit not listed
# counts `_DEFAULT_S`). The laptop sweep's warm-up: 121 s measured, 127 s expected.
CORE_S = 55.0
EXPECTED_S = {"smallpages": 1.0, "fragmenter": 6.0, "scatterer": 5.0, "mixed": 72.0, "thp": 79.0, "cma": 80.0,
              "hotplug": 73.0, "probes": 31.0}
_DEFAULT_S = 5.0


@dataclass
class Unit:
    name: str                     # what it compiles, for the progress line
    params: dict[str, Any]        # the tiny cell that takes those code paths
    expected_s: float = _DEFAULT_S

    def key(self) -> str:
        blob = json.dumps(self.params, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class CompileReport:
    seconds: float = 0.0
    units: list[str] = field(default_factory=list)     # compiled now
    cached: int = 0                                      # skipped: marked done in the cache


# the parameters that decide how many zones a node has
_SHAPE_KEYS = ("memory", "max_order", "pageblock_order", "section_bits", "memory_block_size",
               "movable_fraction", "zones")


def _node_shape(p: dict[str, Any]) -> tuple:
    """What changes the numba types of a cell's arguments: the number of zones in the node."""
    from kernels.zone import zone_spans

    from ..cell.params import ParamError, resolve
    try:
        r = resolve({k: p[k] for k in _SHAPE_KEYS if p.get(k) is not None})
    except ParamError:
        return (1,)
    return (len(zone_spans(r["nr_pages"], r["_movable_pages"], r["_dma_end"], r["_dma32_end"])),)


def compile_units(params_list: list[dict[str, Any]]) -> list[Unit]:
    """The compile units of these cells' parameters (see the module docstring)."""
    units: dict[tuple, Unit] = {}
    probes: dict[tuple, tuple[dict[str, Any], list[str]]] = {}
    for p in params_list:
        shape = _node_shape(p)
        short = {**p, "ops": min(p.get("ops", 0), WARM_OPS)}
        key = ("workload", p.get("workload", "smallpages")) + shape
        if key not in units:
            name = key[1] + (f" ({shape[0]} zones)" if shape[0] > 1 else "")
            units[key] = Unit(name, {**short, "probe": []}, EXPECTED_S.get(key[1], _DEFAULT_S))
        if p.get("probe"):
            cell, specs = probes.setdefault(shape, (short, []))
            specs.extend(s for s in p["probe"] if s not in specs)
    for shape, (cell, specs) in probes.items():
        name = "probes" + (f" ({shape[0]} zones)" if shape[0] > 1 else "")
        units[("probes",) + shape] = Unit(name, {**cell, "probe": specs}, EXPECTED_S["probes"])
    return sorted(units.values(), key=lambda u: -u.expected_s)


def _cache_dir() -> Path:
    """Where the marks live: in numba's cache folder, under the numba version, the model's
    sources (NUMBA_CACHE_DIR, when set, is not keyed on them) and where they are: numba keeps a
    separate cache per source folder, so a second clone of the project compiles again."""
    import hashlib

    import numba

    import kernels  # sets numba's cache folder
    where = hashlib.sha256(str(Path(kernels.__file__).resolve().parent).encode()).hexdigest()[:8]
    return Path(numba.config.CACHE_DIR) / f"warm-{numba.__version__}-{kernels.SOURCE_HASH}-{where}"


def run_unit(params: dict[str, Any]) -> float:
    """Run one compile unit here (compiling, or loading numba's cache). Best effort: a cell that
    fails fails again, recorded, when it runs for real."""
    from ..cell.simulate import run
    t0 = time.perf_counter()
    try:
        run(params)
    except Exception:
        pass
    return time.perf_counter() - t0


def warm_up(unit_params: list[dict[str, Any]]) -> tuple[float, str]:
    """Run these compile units' cells one after the other in this process (a node of a cluster,
    in one task); -> (seconds, the model version this process runs)."""
    import kernels
    t0 = time.perf_counter()
    for params in unit_params:
        run_unit(params)
    return time.perf_counter() - t0, kernels.MODEL_VERSION


def expected_wall_s(units: list[Unit], processes: int) -> float:
    """The expected wall time of the pool: the shared core in every process, then the units
    longest first, each to the first free process."""
    if not units:
        return 0.0
    free = [CORE_S] * max(1, min(processes, len(units)))
    for u in units:
        i = free.index(min(free))
        free[i] += u.expected_s
    return max(free)


def compile_model(units: list[Unit], processes: int | None = None,
                  progress: bool = True, check: Callable[[], None] | None = None) -> CompileReport:
    """Compile these units (`compile_units` of the planned cells; see the module docstring) unless
    marked done; -> what was compiled, and how long.

    Each unit runs in a process of its own (`python -m farm.sweep.warmup`, the unit's parameters on
    standard input). `check` is called between polls (the runner raises KeyboardInterrupt there
    after Ctrl-C); the processes are then killed."""
    t0 = time.perf_counter()
    report = CompileReport()
    marks = _cache_dir()
    todo = [u for u in units if not (marks / u.key()).exists()]
    report.cached = len(units) - len(todo)
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report
    processes = max(1, min(processes or os.cpu_count() or 1, len(todo)))
    tty = sys.stderr.isatty()
    bar = _bar(todo, processes, progress, tty)
    queue = list(todo)
    running: dict[subprocess.Popen, Unit] = {}
    started: dict[subprocess.Popen, float] = {}
    try:
        while queue or running:
            while queue and len(running) < processes:
                u = queue.pop(0)
                proc = subprocess.Popen([sys.executable, "-m", "farm.sweep.warmup"], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
                proc.stdin.write(json.dumps(u.params, default=str))
                proc.stdin.close()
                running[proc] = u
                started[proc] = time.perf_counter()
            time.sleep(0.25)
            for proc in [p for p in running if p.poll() is not None]:
                u = running.pop(proc)
                if proc.returncode == 0:
                    marks.mkdir(parents=True, exist_ok=True)
                    (marks / u.key()).write_text(json.dumps(
                        {"unit": u.name, "seconds": time.perf_counter() - started[proc], "params": u.params},
                        sort_keys=True, default=str))
                report.units.append(u.name)
                bar.update(1)
            bar.set_postfix_str("compiling " + ", ".join(u.name for u in running.values()) if running else "",
                                refresh=False)
            if tty:  # a log (no terminal) gets tqdm's own sparse updates only
                bar.refresh()
            if check is not None:
                check()
    finally:
        for proc in running:
            proc.kill()
            proc.wait()
        bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _bar(todo: list[Unit], processes: int, enabled: bool, tty: bool):
    from tqdm import tqdm
    expected = expected_wall_s(todo, processes)
    return tqdm(total=len(todo), unit="unit", file=sys.stderr, disable=not enabled,
                desc=f"compiling the model (first run; cached afterwards), expected ~{expected:.0f} s",
                bar_format="{desc}: {n}/{total} units, {elapsed} elapsed{postfix}",
                mininterval=0.5 if tty else 15.0, dynamic_ncols=tty)


if __name__ == "__main__":
    run_unit(json.loads(sys.stdin.read()))
