"""One stored row per cell: the result object of `farm.cell.simulate.run` flattened into columns.

Plain Python (no pandas, no pyarrow): this runs inside the workers. The flattening is generic,
so a new counter, metric or probe field becomes a new column without a change here:

- key columns: `cell_id`, `sweep`, `model_version`, `status` (`ok` or `error`), `error` (message);
- parameters, one column each, named as the parameter; list-valued parameters (`holes`,
  `probe`) as one string, their canonical items joined by `LIST_SEP` ("; "), "" for none
  (a probe spec has commas of its own, so the items are not comma-joined);
- `counters`: one column per counter under its own name (`split_steps`, `pgalloc_normal`), or
  `counters_<name>` if that name is already taken by a parameter or another column;
- other nested dicts: names joined with `_` (`pagetypeinfo_blocks_Movable`, `timing_wall_s`);
- lists of numbers (buddyinfo, indices, per-order free counts): list columns;
- `probes`: per probe i, `probe<i>_<kind>_<field>` and `probe<i>_<kind>_fail_<reason>`;
- provenance, which differs between two runs of the same cell: `cell_s` (wall time of the whole
  cell in the worker), `finished_at`, `run_id`, `host`, `node` (Ray node id), `pid`.
"""

from __future__ import annotations

import json
import re
from typing import Any

KEY_COLUMNS = ("cell_id", "sweep", "model_version", "status", "error")
PROVENANCE_COLUMNS = ("cell_s", "finished_at", "run_id", "host", "node", "pid")
# Result keys that are not metrics: the parameters come from the plan (error rows have them too).
_NOT_METRICS = ("params", "model_version")


def volatile_columns(columns) -> list[str]:
    """Columns that differ between two runs of the same cell: provenance and `timing_*`."""
    return [c for c in columns if c in PROVENANCE_COLUMNS or c.startswith("timing_")]


LIST_SEP = "; "


def param_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return LIST_SEP.join(str(x) for x in value)
    return value


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name))


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays -> Python numbers and lists."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple, dict, str)):
        return value.tolist()
    return value


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def flatten_result(result: dict[str, Any], taken: set[str] | frozenset = frozenset()) -> dict[str, Any]:
    """The metric columns of one result object (see the module docstring for the names)."""
    out: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        name = _clean(name)
        if name in out or name in taken:
            raise ValueError(f"two metrics flatten to the column name {name!r}")
        out[name] = value

    def walk(prefix: str, value: Any) -> None:
        value = _plain(value)
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}_{k}", v)
        elif isinstance(value, (list, tuple)):
            value = [_plain(x) for x in value]
            if all(_is_number(x) for x in value):
                put(prefix, list(value))
            else:
                put(prefix, json.dumps(value, sort_keys=True))
        else:
            put(prefix, value)

    for key, value in result.items():
        if key in _NOT_METRICS:
            continue
        if key == "counters":
            for name, v in value.items():
                clash = _clean(name) in taken or name in result
                put(f"counters_{name}" if clash else name, _plain(v))
        elif key == "probes":
            for i, probe in enumerate(value):
                prefix = f"probe{i}_{probe.get('kind', 'probe')}"
                for fname, v in probe.items():
                    if fname == "kind":
                        continue
                    if fname == "failure_reasons":
                        for reason, n in v.items():
                            put(f"{prefix}_fail_{reason}", _plain(n))
                    else:
                        walk(f"{prefix}_{fname}", v)
        else:
            walk(key, value)
    return out


def _head(cell_id: str, sweep: str, model_version: str, status: str, error: str | None,
          params: dict[str, Any]) -> dict[str, Any]:
    row = {"cell_id": cell_id, "sweep": sweep, "model_version": model_version, "status": status,
           "error": error}
    row.update({name: param_value(v) for name, v in params.items()})
    return row


def ok_row(cell_id: str, sweep: str, params: dict[str, Any], result: dict[str, Any],
           provenance: dict[str, Any]) -> dict[str, Any]:
    row = _head(cell_id, sweep, result.get("model_version", ""), "ok", None, params)
    row.update(flatten_result(result, frozenset(row) | frozenset(PROVENANCE_COLUMNS)))
    row.update(provenance)
    return row


def error_row(cell_id: str, sweep: str, params: dict[str, Any], model_version: str, message: str,
              provenance: dict[str, Any]) -> dict[str, Any]:
    row = _head(cell_id, sweep, model_version, "error", message, params)
    row.update(provenance)
    return row
