"""The time measure of a cell: CPU time, repeats of the deterministic workload loop and the
calibration loop (farm/cell/simulate.py)."""

import math

import numba
import pytest

from farm.cell import simulate as S
from farm.cell.params import resolve
from kernels.rng import seed_state

JIT = not numba.config.DISABLE_JIT


@pytest.mark.parametrize("workload", ["smallpages", "mixed", "fragmenter"])
def test_timing_fields_are_consistent(workload):
    r = S.run({"workload": workload, "memory": "64M", "ops": 20_000, "seed": 3})
    t = r["timing"]
    runs = t["ns_per_op_runs"]
    assert t["repeats"] == len(runs) >= 1
    assert t["ns_per_op"] == min(runs) > 0
    assert all(t["ns_per_op"] <= x for x in runs)
    ops = r["counters"]["alloc_ops"] + r["counters"]["free_ops"] if workload == "fragmenter" else 20_000
    assert t["cpu_s"] * 1e9 / ops == pytest.approx(t["ns_per_op"])
    assert t["wall_s"] * 1e9 / ops == pytest.approx(t["ns_per_op_wall"])
    assert 0 < t["cpu_s"] <= t["wall_s"] * 1.01 + 1e-4     # CPU time leaves out waiting for a core
    if len(runs) > 1:
        assert t["ns_per_op_spread"] == pytest.approx(max(runs) / min(runs)) and t["ns_per_op_spread"] >= 1
    else:
        assert t["ns_per_op_spread"] is None
    if JIT:
        assert t["repeats"] >= 2                        # 64 MiB and 20,000 operations: well within budget
        assert t["calib_ns"] > 0 and t["calib_spread"] >= 1
        assert t["ns_per_op_norm"] == pytest.approx(t["ns_per_op"] / t["calib_ns"])
    else:                                               # plain Python: no calibration
        assert t["calib_ns"] is None and t["ns_per_op_norm"] is None
    assert t["repeat_s"] >= 0


def test_repeats_have_the_counters_of_one_run():
    p = resolve({"workload": "mixed", "memory": "64M", "ops": 5_000, "seed": 2})
    node, extra, ops, t = S.timed_workload(p, repeats=3, share=math.inf)
    assert t["repeats"] == 3 and len(t["ns_per_op_runs"]) == 3
    one, extra_one, _, _, _ = S._simulate_once(p)
    assert [z.stat.tolist() for z in node] == [z.stat.tolist() for z in one]
    assert [z.nr_free.tolist() for z in node] == [z.nr_free.tolist() for z in one]
    assert extra == extra_one


def test_a_repeat_with_other_counters_is_an_error(monkeypatch):
    real = S.WORKLOAD_RUNNERS["smallpages"]
    calls = []

    def drifting(node, p, rng, extra, finish=True):     # a workload not deterministic for its seed
        calls.append(1)
        return real(node, p, seed_state(p["seed"] + len(calls)), extra, finish)

    monkeypatch.setitem(S.WORKLOAD_RUNNERS, "smallpages", drifting)
    p = resolve({"workload": "smallpages", "memory": "64M", "ops": 5_000, "seed": 1})
    with pytest.raises(S.SimulationError, match="not deterministic"):
        S.timed_workload(p, repeats=2, share=math.inf)


def test_repeats_stop_at_the_budget():
    p = resolve({"workload": "smallpages", "memory": "64M", "ops": 5_000, "seed": 1})
    _, _, _, t = S.timed_workload(p, repeats=5, share=0.0)        # a short loop is run twice at least
    assert t["repeats"] == 2 and t["ns_per_op_spread"] >= 1
    _, _, _, t = S.timed_workload(p, repeats=4, share=math.inf)
    assert t["repeats"] == 4
    _, _, _, t = S.timed_workload(p, repeats=5, share=math.inf, long_s=0.0)   # a long loop: once
    assert t["repeats"] == 1 and t["ns_per_op_spread"] is None
    zero = resolve({"workload": "smallpages", "memory": "64M", "ops": 0, "seed": 1})
    _, _, ops, t = S.timed_workload(zero, repeats=5, share=math.inf)          # nothing to time
    assert ops == 0 and t["repeats"] == 1 and t["ns_per_op"] == 0.0
