"""`farm bench`: the suite runs end to end at tiny sizes (figures are recorded, never asserted),
and what it measures is what it says: the reference comparison runs one sequence through both
models with the same pfns, the memory figure is the model's arrays."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from farm import bench
from farm.cell.params import WORKLOADS
from farm.cli import main

TINY = """
    [sweep]
    name = "tiny"
    seeds = 1
    [base]
    memory = "16M"
    ops = 500
    [grid]
    max_order = [10, 11]
"""


def test_op_sequence_keeps_the_live_count_consistent():
    is_alloc, orders, victims = bench.op_sequence(5000, 1 << 10, occupancy=0.5)
    live = np.cumsum(np.where(is_alloc, 1, -1))
    assert live.min() >= 0 and (orders == 0).all()
    # around the target: allocations dominate below it, frees above it
    assert 400 <= live[-1] <= 700


@pytest.mark.slow
def test_suite_smoke(tmp_path, capsys):
    sweep = tmp_path / "tiny.toml"
    sweep.write_text(textwrap.dedent(TINY))
    trace = tmp_path / "t.txt"
    trace.write_text("".join(
        f"  a-1 [000] ..... {1 + i / 1e6:.6f}: mm_page_alloc: page=(____ptrval____) pfn=0x{0x1000 + i:x} "
        "order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE\n" for i in range(50)))
    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--only", "throughput,reference,memory,trace", "--trace", str(trace),
                 "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    s = data["sections"]
    assert set(s) == {"throughput", "reference", "memory", "trace"}
    assert {r["workload"] for r in s["throughput"]} == set(WORKLOADS)
    assert all(r["ns_per_op"] > 0 for r in s["throughput"])
    # the same sequence through both models: every pfn agrees
    assert all(r["same_pfns"] for r in s["reference"]) and all(r["speedup"] > 1 for r in s["reference"])
    # 11 bytes a page: order, flags, type (1 each), next and prev (4 each), and the small arrays
    assert all(11 <= r["state_bytes_per_page"] <= 12 for r in s["memory"])
    assert s["trace"][0]["events"] == 50
    md = (tmp_path / "b.md").read_text()
    assert "### throughput" in md and "### reference" in md and "machine:" in md
    assert main(["bench", "--only", "nope"]) == 2
    assert "unknown section 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_cold_start_and_sweep_sections_smoke(tmp_path):
    sweep = tmp_path / "tiny.toml"
    sweep.write_text(textwrap.dedent(TINY))
    r = subprocess.run([sys.executable, "-m", "farm.cli", "bench", "--quick", "--only", "cold_start,sweep",
                        "--sweep", str(sweep), "-o", str(tmp_path / "b.json")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "b.json").read_text())["sections"]
    cases = [row["case"] for row in s["cold_start"]]
    assert cases[:3] == ["cold (empty numba cache)", "warm (cache on disk)", "ray start (embedded, 2 CPUs)"]
    assert "error" not in json.dumps(s["cold_start"])
    assert [row["workers"] for row in s["sweep"]] == [1, 2] and all(row["cells"] == 2 for row in s["sweep"])
