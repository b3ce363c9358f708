"""Sweep files: parse, validate and expand a `sweeps/*.toml` file into cells with stable ids.

A sweep file is data (the asv way: benchmark parameters declared, results keyed by a hash of
what produced them, resume = set difference):

    [sweep]   name, description, seeds (a count N -> seeds 1..N, or a list)
    [base]    parameters shared by every cell
    [grid]    axes, each a list of values: their Cartesian product
    [zip]     axes of equal length, taken in lock-step (one more "axis" of the product)
    [[exclude]] tables: a combination matching every key of a table is left out

Parameter names are those of `farm simulate` with underscores, so every cell can be rerun by
hand (`Cell.command`). Everything is checked before anything runs: a value that fails its own
parser, an unknown key, a wrong type or unequal zip lengths is a `SweepError` naming the file
and the key. Combinations of individually valid values that the model rejects
(`farm.cell.params.resolve` raises, e.g. pageblock_order > max_order) are dropped and counted.

No Ray, pandas or I/O beyond reading the file: `farm plan` needs nothing else.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernels import MODEL_VERSION

from ..cell.params import PARAMS, ParamError, public, resolve

SECTIONS = ("sweep", "base", "grid", "zip", "exclude")
SWEEP_KEYS = ("name", "description", "seeds")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A guard against a typo that multiplies a sweep into something no cluster finishes.
MAX_CANDIDATES = 2_000_000


class SweepError(ValueError):
    """A sweep file that cannot be run as written: `file`, `key` (e.g. `grid.max_order`) and why."""

    def __init__(self, file: str | Path, key: str, message: str):
        super().__init__(f"{file}: {key}: {message}")
        self.file = str(file)
        self.key = key
        self.message = message


def is_list_param(name: str) -> bool:
    """Parameters whose value is itself a list (`holes`, `probe`): one value is a list."""
    return isinstance(PARAMS[name].default, list)


def cell_id(params: dict[str, Any], model_version: str = MODEL_VERSION) -> str:
    """Stable id of a cell: a hash of its canonical parameters, its seed and the model version.

    `params` is `public(resolve(raw))`; the JSON is sorted and compact, so the id does not depend
    on the order the sweep file lists things in, on the process or on the machine. Parameters at
    their registry default are left out, so adding a parameter (with a default that keeps the old
    behaviour) leaves every stored cell id valid; a change of a default's meaning is a change of
    MODEL_VERSION."""
    params = {k: v for k, v in params.items()
              if k == "seed" or k not in PARAMS or v != PARAMS[k].default}
    blob = json.dumps({"model_version": model_version, "params": params, "seed": params["seed"]},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def simulate_command(params: dict[str, Any]) -> str:
    """The `farm simulate` command line that reruns one cell by hand. A list-valued parameter is
    given once per item if its option is repeatable (`--probe A --probe B`), else comma-joined."""
    argv = ["farm", "simulate"]
    for name, spec in PARAMS.items():
        if name not in params:
            continue
        value = params[name]
        if name != "seed" and value == spec.default:
            continue
        option = "--" + name.replace("_", "-")
        if isinstance(spec.default, bool):
            argv.append(option if value else "--no-" + option[2:])
        elif isinstance(value, list):
            if spec.repeatable:
                for item in value:
                    argv += [option, str(item)]
            else:
                argv += [option, ",".join(str(x) for x in value)]
        elif value is not None:
            argv += [option, str(value)]
    return shlex.join(argv)


@dataclass(frozen=True)
class Cell:
    """One (parameters, seed) point of a sweep."""

    id: str
    params: dict[str, Any]  # canonical: public(resolve(raw)), seed included

    @property
    def run_params(self) -> dict[str, Any]:
        """What `farm.cell.simulate.run` takes (derived values such as nr_pages left out)."""
        return {k: v for k, v in self.params.items() if k in PARAMS}

    @property
    def command(self) -> str:
        return simulate_command(self.params)


@dataclass
class Plan:
    """A validated, expanded sweep. `candidates = len(cells) + excluded + dropped + duplicates`,
    all counted in cells (parameter combinations x seeds)."""

    file: str
    name: str
    description: str
    seeds: list[int]
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    zip: dict[str, list[Any]]
    exclude: list[dict[str, list[Any]]]
    cells: list[Cell] = field(default_factory=list)
    candidates: int = 0
    excluded: int = 0
    dropped: int = 0
    duplicates: int = 0
    dropped_reasons: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def axes(self) -> dict[str, list[Any]]:
        return {**self.grid, **self.zip}

    def summary(self) -> dict[str, Any]:
        return {
            "sweep": self.name, "file": self.file, "description": self.description,
            "model_version": MODEL_VERSION, "cells": len(self.cells), "candidates": self.candidates,
            "excluded": self.excluded, "dropped": self.dropped, "duplicates": self.duplicates,
            "dropped_reasons": self.dropped_reasons, "seeds": self.seeds,
            "axes": {k: [_display(k, v) for v in vals] for k, vals in self.axes.items()},
            "zip": list(self.zip), "base": {k: _display(k, v) for k, v in self.base.items()},
        }


def _display(name: str, value: Any) -> Any:
    if name in PARAMS and is_list_param(name):
        from .results import param_value
        return param_value(value)
    return value


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


class _Reader:
    """Validation helpers bound to one file, so every error names it."""

    def __init__(self, file: str):
        self.file = file

    def error(self, key: str, message: str) -> SweepError:
        return SweepError(self.file, key, message)

    def table(self, doc: dict, name: str) -> dict:
        value = doc.get(name, {})
        if not isinstance(value, dict):
            raise self.error(name, f"expected a table [{name}], got {_type_name(value)}")
        return value

    def param(self, key: str, name: str) -> None:
        if name not in PARAMS:
            raise self.error(key, "unknown parameter (the names are the `farm simulate` options "
                             "with underscores: " + ", ".join(PARAMS) + ")")
        if name == "seed":
            raise self.error(key, "seeds are set in [sweep] as seeds = N (seeds 1..N) or a list")

    def value(self, key: str, name: str, value: Any, where: str) -> Any:
        """Parse one value of parameter `name` on its own; malformed values are errors."""
        if isinstance(value, dict):
            raise self.error(key, f"expected a value, got a table {value!r}")
        if isinstance(value, list) and not is_list_param(name):
            hint = " (lists of values belong in [grid] or [zip])" if where == "base" else ""
            raise self.error(key, f"expected one value, got a list {value!r}{hint}")
        if is_list_param(name) and not isinstance(value, (list, str)):
            raise self.error(key, f"expected a list or a string, got {value!r}")
        try:
            return PARAMS[name].parse(name, value)
        except ParamError as e:
            raise self.error(key, str(e)[len(e.key) + 2:]) from None
        except (TypeError, ValueError, AttributeError):
            raise self.error(key, f"invalid value {value!r}") from None

    def axis(self, section: str, name: str, values: Any) -> list[tuple[Any, Any]]:
        key = f"{section}.{name}"
        self.param(key, name)
        if not isinstance(values, list):
            raise self.error(key, f"an axis is a list of values, got {_type_name(values)} {values!r}")
        if not values:
            raise self.error(key, "an axis needs at least one value")
        return [(v, self.value(key, name, v, section)) for v in values]


def _read_toml(path: Path) -> dict:
    try:
        text = path.read_bytes()
    except OSError as e:
        raise SweepError(path, "file", f"cannot read: {e.strerror or e}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SweepError(path, "file", f"not UTF-8 text: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(path, "toml", str(e)) from None


def load_plan(path: str | Path) -> Plan:
    """Read, validate and expand a sweep file. Raises SweepError before anything runs."""
    path = Path(path)
    doc = _read_toml(path)
    r = _Reader(str(path))
    for key in doc:
        if key not in SECTIONS:
            raise r.error(key, f"unknown section; a sweep file has {', '.join(SECTIONS)}")

    sweep = r.table(doc, "sweep")
    for key in sweep:
        if key not in SWEEP_KEYS:
            raise r.error(f"sweep.{key}", f"unknown key; [sweep] has {', '.join(SWEEP_KEYS)}")
    name = sweep.get("name", path.stem)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise r.error("sweep.name", f"expected a name of letters, digits, '.', '_' or '-', got {name!r}")
    description = sweep.get("description", "")
    if not isinstance(description, str):
        raise r.error("sweep.description", f"expected a string, got {_type_name(description)}")
    seeds = _seeds(r, sweep.get("seeds", 1))

    base_raw = r.table(doc, "base")
    base: dict[str, tuple[Any, Any]] = {}
    for pname, value in base_raw.items():
        r.param(f"base.{pname}", pname)
        base[pname] = (value, r.value(f"base.{pname}", pname, value, "base"))

    grid: dict[str, list[tuple[Any, Any]]] = {}
    for pname, values in r.table(doc, "grid").items():
        if pname in base:
            raise r.error(f"grid.{pname}", "also set in [base]; a parameter is either fixed or an axis")
        grid[pname] = r.axis("grid", pname, values)

    zipped: dict[str, list[tuple[Any, Any]]] = {}
    for pname, values in r.table(doc, "zip").items():
        for other, where in ((base, "[base]"), (grid, "[grid]")):
            if pname in other:
                raise r.error(f"zip.{pname}", f"also set in {where}; a parameter is either fixed or one axis")
        zipped[pname] = r.axis("zip", pname, values)
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        first = next(iter(lengths))
        for k, n in lengths.items():
            if n != lengths[first]:
                raise r.error(f"zip.{k}", f"{n} values, but zip.{first} has {lengths[first]}; "
                              "zip axes go in lock-step and need equal lengths")

    excludes = _excludes(r, doc.get("exclude", []), {**grid, **zipped})

    plan = Plan(file=str(path), name=name, description=description, seeds=seeds,
                base={k: v[1] for k, v in base.items()},
                grid={k: [c for _, c in v] for k, v in grid.items()},
                zip={k: [c for _, c in v] for k, v in zipped.items()}, exclude=excludes)
    _expand(r, plan, base, grid, zipped)
    return plan


def _seeds(r: _Reader, seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise r.error("sweep.seeds", f"a count of seeds is at least 1, got {seeds}")
        return list(range(1, seeds + 1))
    if isinstance(seeds, list) and seeds:
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise r.error("sweep.seeds", f"expected a list of integers >= 0, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise r.error("sweep.seeds", f"repeated seeds in {seeds!r}")
        return list(seeds)
    raise r.error("sweep.seeds", f"expected a count (seeds = 3 -> 1, 2, 3) or a non-empty list of "
                  f"integers, got {_type_name(seeds)} {seeds!r}")


def _excludes(r: _Reader, tables: Any, axes: dict[str, list[tuple[Any, Any]]]) -> list[dict[str, list]]:
    """[[exclude]] tables -> [{param: [canonical values]}]. A scalar parameter takes a value or a
    list of values (any of them); a list-valued one takes one value or a list of such lists."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise r.error("exclude", "expected [[exclude]] tables")
    out = []
    for i, table in enumerate(tables, 1):
        where = f"exclude[{i}]"
        if not table:
            raise r.error(where, "an empty table would exclude every cell")
        rule = {}
        for pname, value in table.items():
            key = f"{where}.{pname}"
            r.param(key, pname)
            if pname not in axes:
                raise r.error(key, "not an axis of this sweep (only [grid] and [zip] parameters vary)")
            if is_list_param(pname):
                many = isinstance(value, list) and value and all(isinstance(v, list) for v in value)
            else:
                many = isinstance(value, list)
            values = value if many else [value]
            if not values:
                raise r.error(key, "an empty list matches nothing")
            canon = [r.value(key, pname, v, "exclude") for v in values]
            on_axis = [c for _, c in axes[pname]]
            for v, c in zip(values, canon):
                if c not in on_axis:
                    raise r.error(key, f"{v!r} is not a value of the {pname} axis "
                                  f"({', '.join(repr(_display(pname, x)) for x in on_axis)})")
            rule[pname] = canon
        out.append(rule)
    return out


def _expand(r: _Reader, plan: Plan, base: dict, grid: dict, zipped: dict) -> None:
    names = list(grid)
    choices = [range(len(v)) for v in grid.values()]
    zip_len = len(next(iter(zipped.values()))) if zipped else 1
    combos = 1
    for c in choices:
        combos *= len(c)
    plan.candidates = combos * zip_len * len(plan.seeds)
    if plan.candidates > MAX_CANDIDATES:
        raise r.error("grid", f"{plan.candidates} cells before exclusions; more than {MAX_CANDIDATES} "
                      "(split the sweep)")
    seen: set[str] = set()
    nseeds = len(plan.seeds)
    for idx in itertools.product(*choices, range(zip_len)):
        raw = {k: v[0] for k, v in base.items()}
        canon = {}
        for name, i in zip(names, idx):
            raw[name], canon[name] = grid[name][i]
        for name, values in zipped.items():
            raw[name], canon[name] = values[idx[-1]]
        if any(all(canon[k] in vals for k, vals in rule.items()) for rule in plan.exclude):
            plan.excluded += nseeds
            continue
        try:
            resolve(raw)
        except ParamError as e:
            plan.dropped += nseeds
            reason = plan.dropped_reasons.setdefault(e.key, {"cells": 0, "example": str(e)})
            reason["cells"] += nseeds
            continue
        for seed in plan.seeds:
            params = public(resolve({**raw, "seed": seed}))
            cid = cell_id(params)
            if cid in seen:
                plan.duplicates += 1
                continue
            seen.add(cid)
            plan.cells.append(Cell(cid, params))
    if not plan.cells:
        why = "; ".join(v["example"] for v in plan.dropped_reasons.values()) or "every combination is excluded"
        raise r.error("sweep", f"no cells left to run ({why})")
