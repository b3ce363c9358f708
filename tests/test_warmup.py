"""Compiling the model before a sweep: the compile units a plan needs, the parallel compile and the
marks that let a warm cache skip it."""

import json
from pathlib import Path

import pytest

from farm.sweep import warmup
from farm.sweep.plan import load_plan

ROOT = Path(__file__).resolve().parent.parent


def test_units_of_the_laptop_sweep():
    params = [c.run_params for c in load_plan(ROOT / "sweeps" / "laptop.toml").cells]
    units = warmup.compile_units(params)
    assert sorted(u.name for u in units) == ["fragmenter", "mixed", "probes", "smallpages"]
    by_name = {u.name: u for u in units}
    for name in ("fragmenter", "mixed", "smallpages"):
        assert by_name[name].params["workload"] == name
        assert by_name[name].params["probe"] == []
        assert by_name[name].params["ops"] <= warmup.WARM_OPS
    # every probe spec the plan asks for, once, in one unit
    assert by_name["probes"].params["probe"] == [
        "compact", "contig:size=2M,attempts=64", "hugepages:order=9,count=512"]
    # longest expected first
    assert [u.expected_s for u in units] == sorted((u.expected_s for u in units), reverse=True)


def test_a_node_with_zone_movable_is_a_unit_of_its_own():
    base = {"workload": "mixed", "memory": "256M", "ops": 10**6}
    units = warmup.compile_units([base, {**base, "movable_fraction": 0.5},
                                  {**base, "probe": ["compact"], "movable_fraction": 0.5}])
    names = sorted(u.name for u in units)
    assert names == ["mixed", "mixed (2 zones)", "probes (2 zones)"]


def test_each_number_of_zones_is_a_unit_of_its_own():
    base = {"workload": "smallpages", "memory": "8G"}
    units = warmup.compile_units([base, {**base, "zones": "x86_64"},
                                  {**base, "zones": "x86_64", "memory": "2G"},
                                  {**base, "zones": "x86_64", "movable_fraction": 0.25}])
    assert sorted(u.name for u in units) == ["smallpages", "smallpages (2 zones)",
                                             "smallpages (3 zones)", "smallpages (4 zones)"]


def test_expected_wall_time_packs_the_longest_units_first():
    core = warmup.CORE_S
    units = [warmup.Unit(n, {}, s) for n, s in (("a", 6), ("b", 5), ("c", 4.5), ("d", 4))]
    assert warmup.expected_wall_s(units, 2) == core + 10    # a+d | b+c = 10 | 9.5
    assert warmup.expected_wall_s(units, 1) == core + 19.5
    assert warmup.expected_wall_s(units, 8) == core + 6
    assert warmup.expected_wall_s([], 2) == 0


@pytest.mark.slow
def test_compile_model_compiles_then_skips_with_the_cache_warm(capsys, tmp_path, monkeypatch):
    # the marks in a folder of the test's own (numba's cache itself is shared with the other tests)
    marks = tmp_path / "warm-now"
    monkeypatch.setattr(warmup, "_cache_dir", lambda: marks)
    cell = {"workload": "smallpages", "memory": "16M", "ops": 1000, "seed": 1}
    first = warmup.compile_model(warmup.compile_units([cell]), processes=1, progress=True)
    assert first.cached == 0 and first.units == ["smallpages"]
    err = capsys.readouterr().err
    assert "compiling the model" in err and "1/1 units" in err
    unit = warmup.compile_units([cell])[0]
    assert [m.name for m in marks.iterdir()] == [unit.key()]
    again = warmup.compile_model(warmup.compile_units([cell]), processes=1, progress=True)
    assert again.units == [] and again.cached == 1
    # the mark keeps how long the unit took
    took = json.loads((marks / unit.key()).read_text())["seconds"]
    assert 0 < took < first.seconds


def test_marks_are_kept_per_source_folder(monkeypatch):
    """numba keeps its cache per source folder: a second clone must not find the first one's marks."""
    import kernels
    here = warmup._cache_dir()
    monkeypatch.setattr(kernels, "__file__", "/elsewhere/clone/kernels/__init__.py")
    there = warmup._cache_dir()
    assert here != there and here.parent == there.parent
    assert here.name.startswith(f"warm-") and kernels.SOURCE_HASH in here.name and kernels.SOURCE_HASH in there.name
