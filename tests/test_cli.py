"""`farm simulate`: the JSON contract, the /proc formats and the errors a user can cause."""

import json
import subprocess
import sys

import pytest

from farm.cli import main

KEYS = {"params", "model_version", "counters", "buddyinfo", "nr_free_pages", "pagetypeinfo",
        "unusable_index", "extfrag_index", "timing"}
COUNTERS = {"alloc_ops", "alloc_fail", "free_ops", "split_steps", "merge_steps", "orders_scanned",
            "fallback_claim", "fallback_steal"}
TYPES = ["Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate"]


def _simulate(capsys, *argv):
    code = main(["simulate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_has_every_documented_key(capsys):
    code, out, _ = _simulate(capsys, "--memory", "64M", "--max-order", "12", "--pageblock-order", "9",
                             "--policy", "v6.1", "--workload", "smallpages", "--ops", "3000",
                             "--seed", "4", "--pcp", "--json")
    assert code == 0
    r = json.loads(out)
    assert KEYS <= set(r)
    assert COUNTERS <= set(r["counters"])
    p = r["params"]
    assert (p["memory"], p["max_order"], p["pageblock_order"], p["policy"], p["pcp"], p["seed"]) == \
        ("64M", 12, 9, "v6.1", True, 4)
    assert len(r["buddyinfo"]) == 13
    assert list(r["pagetypeinfo"]["free"]) == TYPES
    assert list(r["pagetypeinfo"]["blocks"]) == TYPES
    assert list(r["pagetypeinfo"]["mixed_blocks"]) == TYPES
    assert sum(r["pagetypeinfo"]["blocks"].values()) == 64 * 256 // 512
    assert len(r["unusable_index"]) == len(r["extfrag_index"]) == 13
    assert r["timing"]["wall_s"] > 0 and r["timing"]["ns_per_op"] > 0
    assert r["nr_free_pages"] == 64 * 256


def test_ops_zero_reports_the_initial_state(capsys):
    code, out, _ = _simulate(capsys, "--memory", "4G", "--ops", "0", "--json", "--compact")
    r = json.loads(out)
    assert r["buddyinfo"] == [0] * 10 + [1024]
    assert r["counters"]["alloc_ops"] == 0
    assert r["pagetypeinfo"]["blocks"]["Movable"] == 2048
    assert r["pagetypeinfo"]["free"]["Movable"][10] == 1024
    assert r["unusable_index"] == [0] * 11
    assert r["extfrag_index"] == [-1000] * 11


def test_buddyinfo_format(capsys):
    code, out, _ = _simulate(capsys, "--memory", "8M", "--ops", "0", "--buddyinfo")
    assert code == 0
    assert out == "Node 0, zone   Normal " + "     0 " * 10 + "     2 \n"


@pytest.mark.parametrize("argv, key", [
    (["--max-order", "10", "--pageblock-order", "11"], "--pageblock-order"),
    (["--policy", "v9.9"], "--policy"),
    (["--memory", "2M"], "--memory"),
    (["--memory", "4X"], "--memory"),
    (["--max-order", "18", "--no-vmemmap"], "--max-order"),
    (["--ops", "-5"], "--ops"),
    (["--occupancy", "1.5"], "--occupancy"),
    (["--holes", "1G"], "--holes"),
    (["--order-mix", "9=1"], "--order-mix"),
])
def test_bad_parameters_exit_2_with_one_line_naming_the_parameter(capsys, argv, key):
    code, out, err = _simulate(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], err


def test_installed_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "farm.cli", "simulate", "--memory", "16M", "--ops", "100",
                        "--json", "--compact"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counters"]["alloc_ops"] > 0
    r = subprocess.run([sys.executable, "-m", "farm.cli", "simulate", "--pageblock-order", "12"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr
