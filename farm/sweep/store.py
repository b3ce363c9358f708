"""The results store: one folder per sweep (default `runs/<sweep name>/`).

    sweep.json        what was planned: per sweep name, its file, axes and cell ids
    runs.jsonl        one line per `farm run`: when, how many cells computed, errors, timing
    parts/*.parquet   the rows, one per cell (see farm/sweep/results.py for the columns)

Rows are written as they arrive, each batch to its own Parquet file through a temporary name and
an atomic rename, so a crash or Ctrl-C never leaves a half-written file; at the end of a run the
parts are merged into one (again by rename, then the merged files are removed). Reading takes the
latest row of each cell id (`finished_at`), so a failed cell rerun with `--rerun-failed`, or the
rows of a merge interrupted between its rename and its deletes, count once.

No Ray here: `farm plan`, `farm ls` and `farm.load` read the store without a cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .results import KEY_COLUMNS, LIST_SEP, PROVENANCE_COLUMNS

PARTS = "parts"
MANIFEST = "sweep.json"
RUN_LOG = "runs.jsonl"
LOCK = ".lock"
_META_KEY = b"buddyfarm"


class StoreError(RuntimeError):
    """A folder that is not a results store, or one another `farm run` is writing to."""

    def __init__(self, path: str | Path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.message = message


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def table_from_rows(rows: list[dict[str, Any]], params: list[str]) -> pa.Table:
    """Rows -> an Arrow table. Columns: the union of the rows' keys (error rows lack metrics),
    in row order; the parameter names are kept in the schema metadata."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name == "finished_at":
            columns[name] = pa.array(values, type=pa.timestamp("us", tz="UTC"))
        elif name in ("error",) or name in KEY_COLUMNS:
            columns[name] = pa.array(values, type=pa.string())
        else:
            columns[name] = pa.array(values)
    table = pa.table(columns)
    return table.replace_schema_metadata({_META_KEY: json.dumps({"params": params}).encode()})


def _params_of(items: list) -> list[str]:
    """The parameter column names recorded in the metadata of tables or schemas."""
    out: dict[str, None] = {}
    for item in items:
        meta = (getattr(item, "schema", item).metadata or {}).get(_META_KEY)
        if meta:
            out.update(dict.fromkeys(json.loads(meta)["params"]))
    return list(out)


def _concat(tables: list[pa.Table]) -> pa.Table:
    params = _params_of(tables)
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables],
                             promote_options="permissive")
    return table.replace_schema_metadata({_META_KEY: json.dumps({"params": params}).encode()})


class Store:
    """A results folder. Nothing is created until `create()` (so bad input leaves no folder)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.parts = self.root / PARTS
        self._seq = 0

    def exists(self) -> bool:
        return self.parts.is_dir()

    def create(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(self.root, "exists and is not a folder")
        self.parts.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held by `farm run` while it writes: two runs into one folder would race on the merge."""
        with open(self.root / LOCK, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(self.root, "another `farm run` is writing to this folder") from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def clean_temporaries(self) -> None:
        """Remove temporary files a killed writer left (call with the lock held)."""
        for p in self.parts.glob(".tmp-*"):
            p.unlink(missing_ok=True)

    def part_files(self) -> list[Path]:
        if not self.exists():
            return []
        return sorted(p for p in self.parts.glob("*.parquet") if not p.name.startswith("."))

    # -- writing ----------------------------------------------------------------------------

    def append(self, rows: list[dict[str, Any]], params: list[str], run_id: str) -> Path:
        """Write one batch of rows as a new part (temporary name, fsync, atomic rename)."""
        self._seq += 1
        path = self.parts / f"part-{run_id}-{self._seq:06d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table_from_rows(rows, params), sink, compression="zstd")
        _fsync_write(path, sink.getvalue().to_pybytes())
        return path

    def compact(self, run_id: str) -> None:
        """Merge every part into one file. Lossless: every row is kept (reading dedupes)."""
        files = self.part_files()
        if len(files) <= 1:
            return
        table = _concat([pq.read_table(f) for f in files])
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        _fsync_write(self.parts / f"part-{run_id}-merged.parquet", sink.getvalue().to_pybytes())
        for f in files:
            if f.name != f"part-{run_id}-merged.parquet":
                f.unlink(missing_ok=True)

    def write_manifest(self, plan_summary: dict[str, Any], cell_ids: list[str]) -> None:
        manifest = self.manifest()
        entry = dict(plan_summary)
        entry["cell_ids"] = cell_ids
        manifest.setdefault("sweeps", {})[plan_summary["sweep"]] = entry
        _fsync_write(self.root / MANIFEST, json.dumps(manifest, indent=1).encode())

    def log_run(self, record: dict[str, Any]) -> None:
        with open(self.root / RUN_LOG, "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- reading ----------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / MANIFEST).read_text())
        except FileNotFoundError:
            return {"format": 1, "sweeps": {}}

    def runs(self) -> list[dict[str, Any]]:
        try:
            lines = (self.root / RUN_LOG).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def status(self) -> dict[str, str]:
        """cell id -> status of its latest row (only three columns are read)."""
        rows = []
        for f in self.part_files():
            t = pq.read_table(f, columns=["cell_id", "status", "finished_at"])
            rows += zip(t.column("finished_at").to_pylist(), t.column("cell_id").to_pylist(),
                        t.column("status").to_pylist())
        rows.sort(key=lambda r: r[0])
        return {cid: st for _, cid, st in rows}

    def read_table(self) -> pa.Table:
        """Every stored row, as written (no deduplication), in one Arrow table."""
        files = self.part_files()
        if not files:
            raise StoreError(self.root, "no results here (no parts/*.parquet)")
        return _concat([pq.read_table(f) for f in files])


def _ordered_columns(columns: list[str], params: list[str]) -> list[str]:
    key = [c for c in KEY_COLUMNS if c in columns]
    par = [c for c in params if c in columns]
    prov = [c for c in PROVENANCE_COLUMNS if c in columns]
    rest = [c for c in columns if c not in key and c not in par and c not in prov]
    return key + par + rest + prov


def load(path: str | Path, dedupe: bool = True):
    """The results in `path` as one pandas DataFrame, one row per cell, sorted by cell id.

    Columns: the key columns, the parameters, the metrics, then provenance (farm/sweep/results.py).
    With `dedupe=False` every stored row is returned (a cell rerun with --rerun-failed has its
    old error row too)."""
    store = Store(path)
    table = store.read_table()
    params = _params_of([table])
    df = table.to_pandas()
    if dedupe:
        df = df.sort_values("finished_at", kind="stable").drop_duplicates("cell_id", keep="last")
    df = df.sort_values(["cell_id", "finished_at"], kind="stable").reset_index(drop=True)
    _fill_failure_counts(df)
    return df[_ordered_columns(list(df.columns), params)]


def _fill_failure_counts(df) -> None:
    """A probe reports only the failure reasons it met: `probe<i>_<kind>_fail_<reason>` is 0, not
    missing, in every cell that ran that probe (one whose other `probe<i>_<kind>_*` columns are set)."""
    for col in [c for c in df.columns if c.startswith("probe") and "_fail_" in c]:
        prefix = col.split("_fail_")[0] + "_"
        others = [c for c in df.columns if c.startswith(prefix) and "_fail_" not in c]
        if not others:
            continue
        ran = df[others].notna().any(axis=1)
        df.loc[ran, col] = df.loc[ran, col].fillna(0)
        if df[col].notna().all():
            df[col] = df[col].astype("int64")


def param_columns(path: str | Path) -> list[str]:
    """The names of the parameter columns of a store (from the Parquet metadata)."""
    return _params_of([pq.read_schema(f) for f in Store(path).part_files()])


def summarise(path: str | Path) -> dict[str, Any]:
    """What `farm ls` reports about a results folder."""
    from ..cell.params import PARAMS
    from .plan import simulate_command
    store = Store(path)
    if not store.exists():
        raise StoreError(path, "not a results folder (no parts/ inside)")
    df = load(path)
    params = param_columns(path)
    status = df["status"].value_counts()
    ids = set(df["cell_id"])
    sweeps = {}
    for name, sw in store.manifest().get("sweeps", {}).items():
        planned = sw.get("cell_ids", [])
        stored = sum(1 for i in planned if i in ids)
        sweeps[name] = {"file": sw.get("file"), "model_version": sw.get("model_version"),
                        "cells": len(planned), "stored": stored, "missing": len(planned) - stored}
    axes = {}
    for name in params:
        values = df[name].dropna().unique().tolist()
        if len(values) > 1:
            axes[name] = sorted(values, key=lambda v: (str(type(v)), v))
    errors = []
    for _, row in df[df["status"] == "error"].iterrows():
        p = {k: row[k] for k in params if k in PARAMS and row[k] == row[k]}
        for k, v in list(p.items()):
            if isinstance(PARAMS[k].default, list):
                p[k] = [x for x in str(v).split(LIST_SEP) if x]
            elif hasattr(v, "item"):
                p[k] = v.item()
        errors.append({"cell_id": row["cell_id"], "error": row["error"], "command": simulate_command(p)})
    metrics = [c for c in df.columns if c not in KEY_COLUMNS and c not in PROVENANCE_COLUMNS
               and c not in params]
    cell_s = df["cell_s"].dropna() if "cell_s" in df else None
    return {
        "dir": str(path), "rows": len(df), "ok": int(status.get("ok", 0)), "error": int(status.get("error", 0)),
        "columns": len(df.columns), "params": params, "metrics": len(metrics),
        "model_versions": sorted(df["model_version"].dropna().unique().tolist()),
        "sweeps": sweeps, "axes": axes, "runs": store.runs(), "errors": errors,
        "cell_s_total": float(cell_s.sum()) if cell_s is not None and len(cell_s) else None,
        "cell_s_median": float(cell_s.median()) if cell_s is not None and len(cell_s) else None,
    }
