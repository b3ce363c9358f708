"""Sweep files, cells and the results store, without Ray: expansion (grid, zip, exclude, seeds,
dropped combinations), stable cell ids, the errors a user can cause, flattening, Parquet store,
`farm plan` and `farm ls`."""

import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from farm.cell.params import PARAMS, public, resolve
from farm.cli import build_parser, main
from farm.sweep.plan import SweepError, cell_id, load_plan
from farm.sweep.results import error_row, flatten_result, ok_row
from farm.sweep.store import Store, load

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "sweeps").glob("*.toml"))


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- expansion ------------------------------------------------------------------------------

def test_grid_is_a_product_with_seeds_innermost(tmp_path):
    plan = load_plan(write(tmp_path, """
        [sweep]
        name = "g"
        seeds = 3
        [base]
        memory = "16M"
        ops = 100
        [grid]
        max_order = [10, 11, 12]
        policy = ["v5.4", "v6.15"]
    """))
    assert len(plan.cells) == 18 and plan.candidates == 18
    assert (plan.excluded, plan.dropped, plan.duplicates) == (0, 0, 0)
    got = [(c.params["max_order"], c.params["policy"], c.params["seed"]) for c in plan.cells]
    assert got == [(m, p, s) for m in (10, 11, 12) for p in ("v5.4", "v6.15") for s in (1, 2, 3)]
    assert plan.cells[0].params == public(resolve({"memory": "16M", "ops": 100, "max_order": 10,
                                                   "policy": "v5.4", "seed": 1}))
    assert plan.seeds == [1, 2, 3]
    assert plan.axes == {"max_order": [10, 11, 12], "policy": ["v5.4", "v6.15"]}


def test_zip_axes_go_in_lockstep_inside_the_grid(tmp_path):
    plan = load_plan(write(tmp_path, """
        [grid]
        pcp = [false, true]
        [zip]
        memory = ["16M", "32M", "64M"]
        ops = [100, 200, 300]
    """))
    assert len(plan.cells) == 6 and plan.seeds == [1]
    pairs = [(c.params["pcp"], c.params["memory"], c.params["ops"]) for c in plan.cells]
    assert pairs == [(p, m, o) for p in (False, True) for m, o in (("16M", 100), ("32M", 200), ("64M", 300))]


def test_exclude_drop_and_duplicate_counts(tmp_path):
    plan = load_plan(write(tmp_path, """
        [sweep]
        seeds = [5, 7]
        [base]
        memory = "16M"
        ops = 100
        [grid]
        max_order = [9, 10, 11]
        pageblock_order = [9, 10]
        policy = ["v6.15", "nomobility"]
        [[exclude]]
        policy = "nomobility"
        max_order = [10, 11]
        [[exclude]]
        max_order = 9
        pageblock_order = 9
        policy = ["v6.15"]
    """))
    # 3 x 2 x 2 = 12 combinations x 2 seeds; nomobility at 10, 11 (4 combinations) and
    # (9, 9, v6.15) excluded; (9, 10, *) dropped; (9, 9, nomobility) remains.
    assert plan.candidates == 24
    assert plan.excluded == 5 * 2
    assert plan.dropped == 2 * 2
    assert plan.dropped_reasons == {"pageblock_order": {"cells": 4,
                                                        "example": "pageblock_order: 10 exceeds max_order 9"}}
    assert len(plan.cells) == 24 - 10 - 4 == 10
    assert {c.params["seed"] for c in plan.cells} == {5, 7}
    kept = {(c.params["max_order"], c.params["pageblock_order"], c.params["policy"]) for c in plan.cells}
    assert kept == {(9, 9, "nomobility"), (10, 9, "v6.15"), (10, 10, "v6.15"), (11, 9, "v6.15"),
                    (11, 10, "v6.15")}


def test_equal_canonical_values_are_one_cell(tmp_path):
    plan = load_plan(write(tmp_path, """
        [base]
        ops = 10
        [grid]
        memory = ["16M", "16384K", "32M"]
    """))
    assert len(plan.cells) == 2 and plan.duplicates == 1
    assert plan.candidates == len(plan.cells) + plan.excluded + plan.dropped + plan.duplicates


def test_list_valued_parameter_axis(tmp_path):
    plan = load_plan(write(tmp_path, """
        [base]
        memory = "64M"
        ops = 10
        [grid]
        holes = [[], ["8M:12M"], "8M:12M,16M:20M"]
        [[exclude]]
        holes = ["8M:12M"]
    """))
    assert [c.params["holes"] for c in plan.cells] == [[], ["8M:12M", "16M:20M"]]
    assert plan.excluded == 1


# -- cell ids -------------------------------------------------------------------------------

TWO_ORDERS = """
    [sweep]
    seeds = 2
    [base]
    memory = "16M"
    ops = 100
    [grid]
    max_order = [10, 12]
    policy = ["v5.4", "v6.15"]
"""


def test_cell_ids_are_stable_across_processes(tmp_path):
    path = write(tmp_path, TWO_ORDERS)
    ids = [c.id for c in load_plan(path).cells]
    assert len(set(ids)) == len(ids) == 8
    code = ("import json, sys; from farm.sweep.plan import load_plan; "
            "print(json.dumps([c.id for c in load_plan(sys.argv[1]).cells]))")
    for hashseed in ("0", "12345"):
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                           cwd=tmp_path, env={**os.environ, "PYTHONHASHSEED": hashseed}, timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == ids


def test_cell_ids_ignore_file_order_and_follow_parameters_seed_and_model_version(tmp_path):
    a = load_plan(write(tmp_path, TWO_ORDERS, "a.toml"))
    b = load_plan(write(tmp_path, """
        [grid]
        policy = ["v6.15", "v5.4"]
        max_order = [12, 10]
        [base]
        ops = 100
        memory = "16384K"
        [sweep]
        seeds = [2, 1]
    """, "b.toml"))
    assert sorted(c.id for c in a.cells) == sorted(c.id for c in b.cells)
    p = a.cells[0].params
    assert cell_id(p) == a.cells[0].id
    assert cell_id({**p, "seed": p["seed"] + 1}) != cell_id(p)
    assert cell_id({**p, "ops": p["ops"] + 1}) != cell_id(p)
    assert cell_id(p, model_version="999") != cell_id(p)


def test_a_cell_reruns_by_hand_with_its_farm_simulate_command(tmp_path):
    plan = load_plan(write(tmp_path, """
        [base]
        memory = "64M"
        ops = 10
        [grid]
        pcp = [false, true]
        holes = [[], ["8M:12M", "16M:20M"]]
        order_mix = ["0=1", "0=0.5,2=0.5"]
    """))
    parser = build_parser()
    for cell in plan.cells:
        argv = shlex.split(cell.command)[1:]
        assert argv[0] == "simulate"
        args = parser.parse_args(argv)
        raw = {n: getattr(args, n) for n in PARAMS if getattr(args, n) is not None}
        assert cell_id(public(resolve(raw))) == cell.id, cell.command


# -- errors a user can cause ----------------------------------------------------------------

ERRORS = [
    ("[grids]\nmax_order = [10]\n", "grids", "unknown section"),
    ("[sweep]\nseed = 3\n", "sweep.seed", "unknown key"),
    ("[sweep]\nseeds = 'three'\n", "sweep.seeds", "expected a count"),
    ("[sweep]\nseeds = 0\n", "sweep.seeds", "at least 1"),
    ("[sweep]\nseeds = [1, 1]\n", "sweep.seeds", "repeated"),
    ("[sweep]\nname = '../up'\n", "sweep.name", "expected a name"),
    ("[sweep]\ndescription = 5\n", "sweep.description", "expected a string"),
    ("grid = 5\n", "grid", "expected a table"),
    ("[base]\nmaxorder = 10\n", "base.maxorder", "unknown parameter"),
    ("[grid]\nmax_ordr = [10, 11]\n", "grid.max_ordr", "unknown parameter"),
    ("[grid]\nmax_order = 10\n", "grid.max_order", "an axis is a list"),
    ("[grid]\npolicy = []\n", "grid.policy", "at least one value"),
    ("[base]\nmax_order = 'ten'\n", "base.max_order", "expected an integer"),
    ("[base]\nmax_order = [10, 11]\n", "base.max_order", "[grid] or [zip]"),
    ("[base]\nmemory = {size = 1}\n", "base.memory", "got a table"),
    ("[grid]\nmemory = ['16M', '4X']\n", "grid.memory", "expected a size"),
    ("[grid]\nworkload = ['smallpages', 'nosuch']\n", "grid.workload", "unknown value 'nosuch'"),
    ("[base]\npolicy = 'v9.9'\n", "base.policy", "unknown value 'v9.9'"),
    ("[grid]\npcp = [true, 'maybe']\n", "grid.pcp", "expected true or false"),
    ("[grid]\nseed = [1, 2]\n", "grid.seed", "[sweep]"),
    ("[base]\nmax_order = 10\n[grid]\nmax_order = [11]\n", "grid.max_order", "also set in [base]"),
    ("[zip]\nmemory = ['16M', '32M']\nops = [1, 2, 3]\n", "zip.ops", "3 values, but zip.memory has 2"),
    ("[grid]\npolicy = ['v5.4']\n[[exclude]]\nmax_order = 11\n", "exclude[1].max_order", "not an axis"),
    ("[grid]\npolicy = ['v5.4']\n[[exclude]]\npolicy = 'v6.1'\n", "exclude[1].policy",
     "not a value of the policy axis"),
    ("[grid]\npolicy = ['v5.4']\n[[exclude]]\nnosuch = 1\n", "exclude[1].nosuch", "unknown parameter"),
    ("[grid]\npolicy = ['v5.4']\n[[exclude]]\n", "exclude[1]", "empty table"),
    ("[base]\nmax_order = 10\npageblock_order = 11\n", "sweep", "no cells left"),
    ("[grid\nmax_order = [10]\n", "toml", "line 1"),
]


@pytest.mark.parametrize("text, key, message", ERRORS, ids=[e[1] for e in ERRORS])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_malformed_sweep_is_one_line_naming_file_and_key_exit_2_and_no_folder(
        tmp_path, monkeypatch, capsys, command, text, key, message):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text)
    out = tmp_path / "out"
    argv = [command, str(path)] + (["--out", str(out)] if command == "run" else [])
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"farm {command}: error: {path}: {key}: "), lines[0]
    assert message in lines[0]
    assert not out.exists() and not (tmp_path / "runs").exists()
    with pytest.raises(SweepError) as e:
        load_plan(path)
    assert e.value.key == key


def test_missing_sweep_file(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"farm plan: error: {tmp_path / 'nope.toml'}: file: cannot read")


def test_run_rejects_bad_options_before_anything(tmp_path, capsys):
    path = write(tmp_path, TWO_ORDERS)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "farm run: error: --workers: expected at least 1, got 0"
    assert not (tmp_path / "o").exists()


# -- the shipped sweep files ----------------------------------------------------------------

@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_sweep_validates(path):
    plan = load_plan(path)
    assert plan.name == path.stem
    assert plan.description
    assert len(plan.cells) == len({c.id for c in plan.cells}) > 0
    assert all(set(c.run_params) <= set(PARAMS) for c in plan.cells)


def test_shipped_sweeps_are_there_with_their_sizes(capsys):
    assert {p.stem for p in SHIPPED} >= {"laptop", "slowdown", "contiguity", "cluster"}
    sizes = {}
    for name in ("laptop", "cluster"):
        assert main(["plan", str(ROOT / "sweeps" / f"{name}.toml"), "--json",
                     "--out", "/nonexistent/never"]) == 0
        sizes[name] = json.loads(capsys.readouterr().out)["cells"]
    assert 100 <= sizes["laptop"] <= 1000
    assert sizes["cluster"] >= 2000


def test_plan_ls_and_load_do_not_import_ray(tmp_path):
    path = write(tmp_path, TWO_ORDERS)
    _store_some(tmp_path / "out", load_plan(path), 2)
    code = ("import sys, farm, farm.cli; "
            f"assert farm.cli.main(['plan', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]) == 0; "
            f"assert farm.cli.main(['ls', {str(tmp_path / 'out')!r}]) == 0; "
            f"assert len(farm.load({str(tmp_path / 'out')!r})) == 2; "
            "print('RAY', 'ray' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "RAY False"


# -- rows: flattening -----------------------------------------------------------------------

PROV = {"cell_s": 0.5, "finished_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "run_id": "r",
        "host": "h", "node": "n", "pid": 1}


def test_flattening_names():
    result = {
        "params": {"ignored": 1}, "model_version": "7",
        "counters": {"split_steps": 3, "ops": 5, "buddyinfo": 6},
        "buddyinfo": [1, 2], "nr_free_pages": 7,
        "pagetypeinfo": {"free": {"Movable": [0, 1]}, "blocks": {"Movable": 2}},
        "extfrag_index": [-1000, 250],
        "timing": {"wall_s": 0.1},
        "probes": [
            {"kind": "contig", "params": {"size": "2M", "attempts": 4}, "asked": 4, "obtained": 3,
             "success_rate": 0.75, "pages_migrated": 9, "failure_reasons": {"unmovable_in_range": 1}},
            {"kind": "compact", "params": {}, "asked": 0, "obtained": 0, "success_rate": 1.0,
             "pages_migrated": 12, "failure_reasons": {}},
        ],
    }
    params = {"ops": 10, "seed": 1, "holes": ["1G:2G", "3G:4G"], "probe": ["compact"]}
    row = ok_row("abc", "s", params, result, PROV)
    assert row == {
        "cell_id": "abc", "sweep": "s", "model_version": "7", "status": "ok", "error": None,
        "ops": 10, "seed": 1, "holes": "1G:2G; 3G:4G", "probe": "compact",
        "split_steps": 3, "counters_ops": 5, "counters_buddyinfo": 6,
        "buddyinfo": [1, 2], "nr_free_pages": 7,
        "pagetypeinfo_free_Movable": [0, 1], "pagetypeinfo_blocks_Movable": 2,
        "extfrag_index": [-1000, 250], "timing_wall_s": 0.1,
        "probe0_contig_params_size": "2M", "probe0_contig_params_attempts": 4,
        "probe0_contig_asked": 4, "probe0_contig_obtained": 3, "probe0_contig_success_rate": 0.75,
        "probe0_contig_pages_migrated": 9, "probe0_contig_fail_unmovable_in_range": 1,
        "probe1_compact_asked": 0, "probe1_compact_obtained": 0, "probe1_compact_success_rate": 1.0,
        "probe1_compact_pages_migrated": 12,
        **PROV,
    }
    err = error_row("abc", "s", params, "7", "RuntimeError: boom", PROV)
    assert err["status"] == "error" and err["error"] == "RuntimeError: boom" and "split_steps" not in err
    with pytest.raises(ValueError, match="timing_wall_s"):
        flatten_result({"timing": {"wall_s": 1}, "timing_wall": {"s": 2}})


# -- the store ------------------------------------------------------------------------------

def _rows(plan, n, status="ok", at=None):
    from farm.cell.simulate import run
    rows = []
    for cell in plan.cells[:n]:
        prov = {**PROV, "finished_at": at or dt.datetime.now(dt.timezone.utc)}
        if status == "ok":
            rows.append(ok_row(cell.id, plan.name, cell.params, run(cell.run_params), prov))
        else:
            rows.append(error_row(cell.id, plan.name, cell.params, "0", "RuntimeError: boom", prov))
    return rows


def _store_some(out, plan, n):
    store = Store(out)
    store.create()
    store.append(_rows(plan, n), list(plan.cells[0].params), "run1")
    store.write_manifest(plan.summary(), [c.id for c in plan.cells])
    return store


def test_store_parts_merge_losslessly_and_reading_takes_the_latest_row(tmp_path):
    plan = load_plan(write(tmp_path, TWO_ORDERS))
    store = Store(tmp_path / "out")
    assert not store.exists() and store.status() == {}
    store.create()
    params = list(plan.cells[0].params)
    early = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    store.append(_rows(plan, 3, "error", at=early), params, "r1")
    store.append(_rows(plan, 5), params, "r2")
    assert len(store.part_files()) == 2
    assert not list(store.parts.glob(".*"))
    assert store.status() == {c.id: "ok" for c in plan.cells[:5]}
    assert len(store.read_table()) == 8
    store.compact("r3")
    assert len(store.part_files()) == 1 and len(store.read_table()) == 8
    df = load(tmp_path / "out")
    assert list(df["cell_id"]) == sorted(c.id for c in plan.cells[:5])
    assert set(df["status"]) == {"ok"}
    assert len(load(tmp_path / "out", dedupe=False)) == 8
    cols = list(df.columns)
    assert cols[:5] == ["cell_id", "sweep", "model_version", "status", "error"]
    assert cols[5:5 + len(params)] == params
    assert cols[-6:] == ["cell_s", "finished_at", "run_id", "host", "node", "pid"]
    assert df["buddyinfo"].map(len).tolist() == [p + 1 for p in df["max_order"]]


def test_plan_counts_stored_cells_and_ls_summarises(tmp_path, capsys):
    path = write(tmp_path, TWO_ORDERS)
    plan = load_plan(path)
    store = _store_some(tmp_path / "out", plan, 3)
    store.append(_rows(load_plan(path), 1, "error", at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)),
                 list(plan.cells[0].params), "run2")
    assert main(["plan", str(path), "--out", str(tmp_path / "out"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["cells"], info["done"], info["errors"], info["missing"]) == (8, 2, 1, 5)
    assert main(["ls", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "3 cells stored (2 ok, 1 errors)" in out
    assert "3 of 8 planned cells stored, 5 missing" in out
    assert f"error {plan.cells[0].id}: RuntimeError: boom" in out
    assert "rerun: farm simulate --memory 16M --policy v5.4 --ops 100 --seed 1\n" in out


def test_ls_of_a_folder_without_results(tmp_path, capsys):
    assert main(["ls", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"farm ls: error: {tmp_path}: not a results folder (no parts/ inside)"


def test_a_failure_reason_a_probe_did_not_meet_reads_as_zero(tmp_path):
    def result(probes):
        return {"model_version": "7", "counters": {"alloc_ops": 1}, "probes": probes}

    def contig(reasons):
        return {"kind": "contig", "params": {"size": "2M"}, "asked": 4, "obtained": 4 - sum(reasons.values()),
                "success_rate": 1.0, "pages_migrated": 0, "failure_reasons": reasons}

    rows = [ok_row("a", "s", {"seed": 1}, result([contig({"unmovable_in_range": 2})]), PROV),
            ok_row("b", "s", {"seed": 2}, result([contig({})]), PROV),
            ok_row("c", "s", {"seed": 3}, result([]), PROV)]
    store = Store(tmp_path)
    store.create()
    store.append(rows, ["seed"], "r")
    df = load(tmp_path).set_index("cell_id")
    assert df.loc["a", "probe0_contig_fail_unmovable_in_range"] == 2
    assert df.loc["b", "probe0_contig_fail_unmovable_in_range"] == 0
    assert math.isnan(df.loc["c", "probe0_contig_fail_unmovable_in_range"])
    assert math.isnan(df.loc["c", "probe0_contig_asked"])


def test_a_new_parameter_at_its_default_keeps_every_cell_id(monkeypatch):
    from farm.cell import params as P
    from farm.sweep.plan import cell_id
    cell = P.public(P.resolve({"memory": "64M", "seed": 2}))
    before = cell_id(cell)
    monkeypatch.setitem(P.PARAMS, "future_knob", P.Param("future_knob", lambda k, v: int(v), 0, "x"))
    assert cell_id({**cell, "future_knob": 0}) == before
    assert cell_id({**cell, "future_knob": 1}) != before
    assert cell_id({**cell, "seed": 3}) != before
