"""Results DataFrame (one row per cell, `farm.load`) -> tidy frames, one per figure or table.

Pure functions of DataFrames: no file I/O, no plotting. Each tidy frame carries everything its
figure draws (the means and the bounds of the confidence intervals), so a test can check the
data a figure receives without looking at pixels.

Statistics over seeds: a cell is (parameters, seed). When a frame pools several configurations
into one line (say both migratetypes), the values are first averaged over the pooled
configurations per seed, and the mean and the 95% confidence interval are then taken over the
seeds, so the interval reflects seed-to-seed variation of exactly the quantity drawn.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .stats import mean_ci

BASE_MAX_ORDER = 10          # x86-64 default MAX_PAGE_ORDER (inclusive convention, kernel >= 6.4)
PAGE_SHIFT = 12
MIGRATETYPES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")
POLICY_ORDER = ("v5.4", "v6.1", "v6.10", "v6.15", "v6.16", "v6.17", "nomobility")
LIST_SEP = "; "              # how list-valued parameters are stored (farm/sweep/results.py)

# Parameter columns. Taken from farm.cell.params when it can be imported (it always can in this
# project; the fallback keeps the reports readable on a results folder alone).
try:
    from farm.cell.params import PARAMS as _PARAMS
    PARAM_NAMES: tuple[str, ...] = tuple(_PARAMS)
except ImportError:  # pragma: no cover
    PARAM_NAMES = ("memory", "max_order", "pageblock_order", "section_bits", "memory_block_size",
                   "vmemmap", "holes", "policy", "pcp", "min_free_kbytes", "isolation",
                   "movable_fraction", "cma_size", "workload", "ops", "seed", "occupancy",
                   "order_mix", "migratetype", "mix", "lifetime", "thp_fraction",
                   "pinned_fraction", "period", "hold", "cma_chunk", "fill", "holders",
                   "keep_files", "probe", "check_every")
DERIVED_PARAMS = ("nr_pages",)


# -- metrics ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """A per-cell quantity the reports show. `better` is "lower" for costs, "higher" for rates."""
    name: str
    label: str
    unit: str
    better: str
    group: str
    compute: Callable[[pd.DataFrame], pd.Series]
    needs: tuple[str, ...] = ()

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(df[name], errors="coerce") if name in df else pd.Series(np.nan, index=df.index)


def _per(num: str, den: str, scale: float = 1.0) -> Callable[[pd.DataFrame], pd.Series]:
    def f(df):
        d = _col(df, den)
        return scale * _col(df, num) / d.where(d > 0)
    return f


def _blocks_total(df: pd.DataFrame) -> pd.Series:
    cols = [f"pagetypeinfo_blocks_{t}" for t in MIGRATETYPES if f"pagetypeinfo_blocks_{t}" in df]
    if not cols:
        return pd.Series(np.nan, index=df.index)
    return df[cols].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=1)


def _mixed_pct(df: pd.DataFrame) -> pd.Series:
    cols = [f"pagetypeinfo_mixed_blocks_{t}" for t in MIGRATETYPES if f"pagetypeinfo_mixed_blocks_{t}" in df]
    if not cols:
        return pd.Series(np.nan, index=df.index)
    total = _blocks_total(df)
    return 100.0 * df[cols].apply(pd.to_numeric, errors="coerce").sum(axis=1, min_count=1) / total.where(total > 0)


def _not_movable_pct(df: pd.DataFrame) -> pd.Series:
    total = _blocks_total(df)
    return 100.0 * (total - _col(df, "pagetypeinfo_blocks_Movable")) / total.where(total > 0)


def _index_at_pageblock(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    """unusable_index / extfrag_index (thousandths, mm/vmstat.c) at order pageblock_order, as a
    fraction; extfrag_index -1000 ("the allocation would succeed") becomes NaN."""
    def f(df):
        if column not in df or "pageblock_order" not in df:
            return pd.Series(np.nan, index=df.index)
        out = []
        for arr, pb in zip(df[column], df["pageblock_order"]):
            try:
                v = float(arr[int(pb)])
            except (TypeError, IndexError, ValueError):
                v = float("nan")
            out.append(v / 1000.0 if v >= 0 else float("nan"))
        return pd.Series(out, index=df.index, dtype=float)
    return f


SLOWDOWN_METRICS = (
    Metric("split_per_alloc", "split steps per allocation", "steps", "lower", "slowdown",
           _per("split_steps", "alloc_ops"), ("split_steps", "alloc_ops")),
    Metric("merge_per_free", "merge steps per free", "steps", "lower", "slowdown",
           _per("merge_steps", "free_ops"), ("merge_steps", "free_ops")),
    Metric("scanned_per_alloc", "free-list orders scanned per allocation", "orders", "lower", "slowdown",
           _per("orders_scanned", "alloc_ops"), ("orders_scanned", "alloc_ops")),
    # the CPU time of the workload loop per operation, the least of the cell's timing repeats
    # (wall-clock time before farm/cell/simulate.py measured CPU time and repeated the loop)
    Metric("ns_per_op", "time per operation", "ns", "lower", "slowdown",
           lambda df: _col(df, "timing_ns_per_op"), ("timing_ns_per_op",)),
    # the same time divided by the time per operation of a fixed calibration loop timed in the same
    # task (farm/cell/simulate.py): a machine slower for the whole cell slows both and leaves the ratio alone
    Metric("ns_per_op_norm", "time per operation, normalised", "calibration operations", "lower", "slowdown",
           lambda df: _col(df, "timing_ns_per_op_norm"), ("timing_ns_per_op_norm",)),
)
TIME_METRICS = ("ns_per_op", "ns_per_op_norm")

# How much the timing repeats of one cell differ (slowest / fastest run of the workload loop).
# Carried beside the slowdown metrics to judge the time ratios; never drawn or compared.
NOISE_METRICS = (
    Metric("repeat_spread", "slowest / fastest timing repeat of a cell", "ratio", "lower", "noise",
           lambda df: _col(df, "timing_ns_per_op_spread"), ("timing_ns_per_op_spread",)),
)

# The most work one operation did (the model's max_* counters): the worst case, measured.
WORST_METRICS = (
    Metric("max_split", "most split steps of one allocation", "steps", "lower", "worst",
           lambda df: _col(df, "max_split_steps"), ("max_split_steps",)),
    Metric("max_merge", "most merge steps of one free", "steps", "lower", "worst",
           lambda df: _col(df, "max_merge_steps"), ("max_merge_steps",)),
    Metric("max_scanned", "most free-list orders one allocation probed", "orders", "lower", "worst",
           lambda df: _col(df, "max_orders_scanned"), ("max_orders_scanned",)),
)
# average metric -> its worst-case twin
WORST_OF = {"split_per_alloc": "max_split", "merge_per_free": "max_merge", "scanned_per_alloc": "max_scanned"}

MIX_METRICS = (
    Metric("alloc_fail_per_1k", "failed allocations per 1000", "per 1000 allocations", "lower", "mix",
           _per("alloc_fail", "alloc_ops", 1000.0), ("alloc_fail", "alloc_ops")),
    Metric("claims_per_1k", "fallback claims per 1000 allocations", "per 1000 allocations", "lower", "mix",
           _per("fallback_claim", "alloc_ops", 1000.0), ("fallback_claim", "alloc_ops")),
    Metric("steals_per_1k", "fallback steals per 1000 allocations", "per 1000 allocations", "lower", "mix",
           _per("fallback_steal", "alloc_ops", 1000.0), ("fallback_steal", "alloc_ops")),
    Metric("not_movable_pct", "pageblocks no longer Movable", "% of pageblocks", "lower", "mix",
           _not_movable_pct, ("pagetypeinfo_blocks_Movable",)),
    Metric("mixed_pct", "mixed pageblocks", "% of pageblocks", "lower", "mix", _mixed_pct,
           ("pagetypeinfo_blocks_Movable",)),
    Metric("unusable_pb", "unusable index at pageblock_order", "fraction of free memory", "lower", "mix",
           _index_at_pageblock("unusable_index"), ("unusable_index",)),
    Metric("extfrag_pb", "fragmentation index at pageblock_order", "0..1 (failures only)", "lower", "mix",
           _index_at_pageblock("extfrag_index"), ("extfrag_index",)),
    Metric("compact_stall_per_1k", "direct compaction stalls per 1000 allocations", "per 1000 allocations",
           "lower", "mix", _per("compact_stall", "alloc_ops", 1000.0), ("compact_stall", "alloc_ops")),
)

CELL_METRICS = SLOWDOWN_METRICS + WORST_METRICS + MIX_METRICS
METRICS: dict[str, Metric] = {m.name: m for m in CELL_METRICS}


# -- cells and parameters ----------------------------------------------------------------------

def ok_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The cells that finished (status ok)."""
    if "status" not in df:
        return df.copy()
    return df[df["status"] == "ok"].copy()


def param_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in PARAM_NAMES if c in df.columns]


def _key(v: Any) -> Any:
    """A hashable, comparable stand-in for a parameter value (None/NaN -> "-")."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def normalise_params(df: pd.DataFrame) -> pd.DataFrame:
    """Parameter columns with nulls as "-" (pandas groupby would drop them)."""
    out = df.copy()
    for c in param_columns(out):
        if out[c].isna().any():
            out[c] = out[c].astype(object).where(out[c].notna(), "-")
    return out


def varying_params(df: pd.DataFrame, exclude: Sequence[str] = ("seed",)) -> list[str]:
    """Parameters with more than one value among the cells (in PARAM_NAMES order)."""
    out = []
    for c in param_columns(df):
        if c in exclude:
            continue
        if df[c].map(_key).nunique() > 1:
            out.append(c)
    return out


def sort_values(name: str, values: Sequence[Any]) -> list[Any]:
    """Axis values in a reading order: policies by kernel generation, sizes by size, metrics in
    the order they are defined, numbers by value."""
    vals = list(dict.fromkeys(values))
    if name == "metric":
        known = list(METRICS)
        return sorted(vals, key=lambda v: (known.index(v) if v in known else len(known), str(v)))
    if name in ("panel", "label"):
        return sorted(vals, key=_natural)
    if name == "policy":
        return sorted(vals, key=lambda v: (POLICY_ORDER.index(v) if v in POLICY_ORDER else 99, str(v)))
    if name in ("memory", "memory_block_size", "cma_size", "cma_chunk", "size", "size_label"):
        return sorted(vals, key=lambda v: (size_bytes(v) if v not in (None, "-") else -1))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _natural(v: Any) -> tuple:
    """'pageblock_order 9' before 'pageblock_order 11'; sizes such as '2M' before '8M'."""
    parts = re.split(r"(\d+)", str(v))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def size_bytes(text: Any) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()]


def size_text(nbytes: float) -> str:
    """Bytes in binary units as the parameters write them (2097152 -> '2M')."""
    if nbytes != nbytes:
        return "-"
    n = int(nbytes)
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


#: The isolation regime each policy's kernels have: maxorder before 5.19 (v5.4), pageblock after.
PRE_5_19_POLICIES = ("v5.4",)


def what_if_pairs(df: pd.DataFrame) -> list[tuple[str, str, int]]:
    """(isolation, policy, cells) for every pair of an isolation regime and a policy of another
    era in `df`: maxorder isolation (before 5.19) with a 5.19+ policy, pageblock isolation with
    v5.4. No kernel had such a pair; a sweep may ask for it as a what-if."""
    if "isolation" not in df or "policy" not in df:
        return []
    out = []
    for (iso, pol), g in df.groupby(["isolation", "policy"], sort=True):
        if (iso == "maxorder") != (pol in PRE_5_19_POLICIES) and iso in ("maxorder", "pageblock"):
            out.append((str(iso), str(pol), len(g)))
    return out


def format_value(name: str, v: Any) -> str:
    """A parameter value as a person reads it (pcp True -> "pcp on")."""
    if name == "pcp":
        return "pcp on" if v in (True, "True", "true", 1) else "pcp off"
    if name == "pageblock_order":
        return f"pageblock_order {v}"
    if name == "max_order":
        return f"max_order {v}"
    if name == "migratetype":
        return f"{v} allocations"
    if name == "order_mix":
        return "order-0 only" if v in ("0=1",) else f"orders {v}"
    if name == "regime":
        return {"pageblock": "pageblock isolation (5.19+)",
                "maxorder": "MAX_ORDER-block isolation (before 5.19)"}.get(str(v), str(v))
    if name == "isolation":
        return f"{v} isolation"
    if name == "kind":
        return PROBE_NOUNS.get(str(v), str(v))
    if name == "workload":
        return f"{v} workload"
    if name in ("policy", "panel", "range", "label", "size_label", "type", "metric_label", "series"):
        return str(v)
    return f"{name} {v}"


def derive(df: pd.DataFrame) -> pd.DataFrame:
    """ok cells with one column per cell metric (NaN where the result lacks its inputs)."""
    out = normalise_params(ok_cells(df))
    for m in CELL_METRICS + NOISE_METRICS:
        out[m.name] = m.compute(out) if len(out) else pd.Series(dtype=float)
    return out


def present_metrics(df: pd.DataFrame, metrics: Sequence[Metric]) -> list[Metric]:
    """Metrics with at least one value that is not NaN and not all zero."""
    out = []
    for m in metrics:
        if m.name not in df:
            continue
        s = pd.to_numeric(df[m.name], errors="coerce").dropna()
        if len(s) and (s != 0).any():
            out.append(m)
    return out


# -- statistics over seeds ---------------------------------------------------------------------

def summarise(frame: pd.DataFrame, by: Sequence[str], value: str, seed: str = "seed",
              bounds: tuple[float, float] = (0.0, math.inf)) -> pd.DataFrame:
    """Mean and 95% CI of `value` over seeds, per group `by`.

    Rows sharing (by, seed) are other configurations pooled into the group: they are averaged
    first, so each seed contributes one sample. The interval is clipped to `bounds`, the values
    the quantity can take (every quantity in these reports is non-negative; a success rate is at
    most 1). Columns: by..., mean, lo, hi, n (seeds), pooled (rows averaged per seed, the
    largest count)."""
    by = list(by)
    cols = by + ["mean", "lo", "hi", "n", "pooled"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    f = frame[by + [seed, value]].copy()
    f[value] = pd.to_numeric(f[value], errors="coerce")
    f = f.dropna(subset=[value])
    if f.empty:
        return pd.DataFrame(columns=cols)
    per_seed = f.groupby(by + [seed], dropna=False, sort=True)[value].agg(["mean", "size"]).reset_index()
    rows = []
    for key, g in per_seed.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        est = mean_ci(g["mean"].tolist())
        lo = max(est.lo, bounds[0]) if est.lo == est.lo else est.lo
        hi = min(est.hi, bounds[1]) if est.hi == est.hi else est.hi
        rows.append(list(key) + [est.mean, lo, hi, est.n, int(g["size"].max())])
    return pd.DataFrame(rows, columns=cols)


# -- slowdown -----------------------------------------------------------------------------------

# Always part of a slowdown configuration (constants included, for labels and sentences).
SLOWDOWN_KEYS = ("workload", "memory", "order_mix", "policy", "pcp", "pageblock_order", "migratetype")
# Split into separate figures when they vary; lines and panels show policy, pcp and pageblock_order.
FIGURE_KEYS = ("workload", "memory", "order_mix")
DISPLAY_KEYS = ("policy", "pcp", "pageblock_order")
# Parameters that never change the workload's counters (probes run after the workload).
NOT_WORKLOAD = ("probe", "seed", "max_order", "nr_pages")


def slowdown_config_keys(df: pd.DataFrame) -> list[str]:
    keys = [k for k in SLOWDOWN_KEYS if k in df]
    keys += [k for k in varying_params(df) if k not in keys and k not in NOT_WORKLOAD]
    return keys


def no_effect_params(d: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """Varying configuration keys that change none of `metrics` in any configuration and seed
    (`isolation` only matters to the probes, which run after the workload)."""
    out = []
    for p in keys:
        if p in ("workload", "policy", "max_order") or d[p].map(_key).nunique() < 2:
            continue
        rest = [k for k in keys if k != p and k not in out] + ["seed", "max_order"]
        g = d.groupby([d[k].map(_key) for k in rest], dropna=False)[list(metrics)]
        if len(metrics) and (g.nunique(dropna=False) <= 1).all().all() and (g.size() > 1).any():
            out.append(p)
    return out


def slowdown_ratios(df: pd.DataFrame, base_order: int = BASE_MAX_ORDER) -> pd.DataFrame:
    """Per cell and slowdown metric: its value and its ratio to the same configuration and seed
    at the baseline max_order (10; the smallest max_order of the configuration when it has no
    cell at 10, as pageblock_order 11 cannot have). The noise metrics (the spread of a cell's
    timing repeats) come along as rows of their own, to judge the time ratios by.

    Columns: the configuration keys, seed, max_order, metric, value, baseline_max_order,
    baseline_value, ratio."""
    d = derive(df)
    keys = slowdown_config_keys(d)
    metrics = [m for m in SLOWDOWN_METRICS + WORST_METRICS + NOISE_METRICS
               if m.name in d and d[m.name].notna().any()]
    cols = keys + ["seed", "max_order", "metric", "value", "baseline_max_order", "baseline_value", "ratio"]
    if d.empty or "max_order" not in d or "seed" not in d:
        return pd.DataFrame(columns=cols)
    timing = set(TIME_METRICS) | {m.name for m in NOISE_METRICS}
    for p in no_effect_params(d, keys, [m.name for m in metrics if m.name not in timing]):
        keys.remove(p)
        cols.remove(p)
    # cells differing only in `probe` have the same workload counters: one row per configuration
    d = d.groupby(keys + ["seed", "max_order"], dropna=False, sort=True)[[m.name for m in metrics]] \
        .mean().reset_index()
    long = d.melt(id_vars=keys + ["seed", "max_order"], value_vars=[m.name for m in metrics],
                  var_name="metric", value_name="value")
    orders = d.groupby(keys, dropna=False)["max_order"].agg(lambda s: sorted(set(int(x) for x in s)))
    base_of = {k if isinstance(k, tuple) else (k,): (base_order if base_order in v else v[0])
               for k, v in orders.items()}
    long["baseline_max_order"] = [base_of[tuple(r)] for r in long[keys].itertuples(index=False)]
    base = long[long["max_order"] == long["baseline_max_order"]][keys + ["seed", "metric", "value"]] \
        .rename(columns={"value": "baseline_value"})
    out = long.merge(base, on=keys + ["seed", "metric"], how="left")
    out["ratio"] = out["value"] / out["baseline_value"].where(out["baseline_value"] > 0)
    return out[cols].sort_values(keys + ["metric", "max_order", "seed"], kind="stable").reset_index(drop=True)


def slowdown_summary(ratios: pd.DataFrame, display: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean ratio and absolute value with 95% CIs over seeds, per figure keys, display keys,
    baseline, max_order and metric; other configuration keys are pooled (averaged per seed).

    Columns: figure keys..., display keys..., baseline_max_order, max_order, metric, mean, lo, hi,
    n, pooled, value_mean, value_lo, value_hi."""
    if display is None:
        display = [k for k in FIGURE_KEYS + DISPLAY_KEYS if k in ratios]
    by = list(display) + ["baseline_max_order", "max_order", "metric"]
    r = summarise(ratios, by, "ratio")
    v = summarise(ratios, by, "value").rename(
        columns={"mean": "value_mean", "lo": "value_lo", "hi": "value_hi"}).drop(columns=["n", "pooled"])
    if r.empty:
        return r
    return r.merge(v, on=by, how="left")


def time_metric(ratios: pd.DataFrame) -> str:
    """The time measure to judge: the normalised time per operation when the cells have it (results
    since the calibration loop), else the time per operation in ns."""
    norm = ratios[(ratios["metric"] == "ns_per_op_norm") & (ratios["value"] > 0)] if len(ratios) else ratios
    return "ns_per_op_norm" if len(norm) else "ns_per_op"


def timing_spread(ratios: pd.DataFrame, metric: str = "ns_per_op") -> float:
    """How much the time per operation of one configuration varies between its seeds: the median
    over configurations and max_orders of (slowest seed / fastest seed). Near 1 when the cells ran
    under the same load; far above 1 when they shared the machine with heavier cells."""
    t = ratios[(ratios["metric"] == metric) & (ratios["value"] > 0)]
    if t.empty:
        return float("nan")
    keys = [c for c in t.columns if c in PARAM_NAMES and c != "seed"]
    g = t.groupby([t[k].map(_key) for k in keys])["value"]
    spread = (g.max() / g.min())[g.size() > 1]
    return float(spread.median()) if len(spread) else float("nan")


def repeat_spread(ratios: pd.DataFrame) -> float:
    """How much the timing repeats inside one cell differ: the median over cells of (slowest run /
    fastest run of the workload loop). NaN for results timed once."""
    t = ratios[(ratios["metric"] == "repeat_spread") & (ratios["value"] > 0)]
    return float(t["value"].median()) if len(t) else float("nan")


@dataclass(frozen=True)
class TimingNoise:
    """The noise of the time measure of a group of cells, as factors (1 = none): `within`, the
    median spread of the timing repeats of a cell; `between`, the median spread between the seeds
    of one configuration; `factor`, the larger of the two (NaN when neither could be measured)."""
    metric: str
    within: float
    between: float

    @property
    def factor(self) -> float:
        known = [x for x in (self.within, self.between) if x == x]
        return max(known) if known else float("nan")

    def beyond(self, lo: float, hi: float) -> bool:
        """True when a ratio's confidence interval [lo, hi] lies wholly outside [1/factor, factor]:
        the difference in time is larger than the machine's measured noise."""
        f = self.factor
        if f != f or lo != lo or hi != hi:
            return False
        return lo > f or hi < 1.0 / f


def timing_noise(ratios: pd.DataFrame) -> TimingNoise:
    """The noise of the time measure `time_metric(ratios)` in these cells."""
    metric = time_metric(ratios)
    return TimingNoise(metric, repeat_spread(ratios), timing_spread(ratios, metric))


def pooled_over(frame: pd.DataFrame, group: Sequence[str]) -> dict[str, list[Any]]:
    """Parameters averaged into each line or square: those that take more than one value inside
    some group of `group` keys (a parameter set by the workload is not pooled in a per-workload
    line). Returns name -> its values, for captions."""
    skip = set(group) | {"seed", "nr_pages", "probe", "max_order"}
    out = {}
    for c in [c for c in frame.columns if c in PARAM_NAMES and c not in skip]:
        keys = [g for g in group if g in frame]
        values = frame[c].map(_key)
        if keys:
            n = values.groupby([frame[g].map(_key) for g in keys]).nunique().max()
        else:
            n = values.nunique()
        if n > 1:
            out[c] = sort_values(c, values.unique().tolist())
    return out


def dependent_params(df: pd.DataFrame, params: Sequence[str]) -> dict[str, str]:
    """Varying parameters that are a function of another varying parameter but not the other way
    round (`mix` is set by `workload`): name -> the parameter that sets it. Zipped axes, which
    determine each other, are both kept as axes."""
    keyed = {p: df[p].map(_key) for p in params}
    out = {}
    for p in params:
        for q in params:
            if p == q or q in out:
                continue
            if keyed[p].groupby(keyed[q]).nunique().max() == 1 and keyed[q].groupby(keyed[p]).nunique().max() > 1:
                out[p] = q
                break
    return out


def smallest_order(order_mix: Any) -> int:
    """The smallest order of an order_mix such as '0=0.7,1=0.1' (0 when unknown)."""
    try:
        orders = [int(p.split("=")[0]) for p in str(order_mix).split(",") if float(p.split("=")[1]) > 0]
        return min(orders) if orders else 0
    except (ValueError, IndexError):
        return 0


def worst_case(ratios: pd.DataFrame) -> pd.DataFrame:
    """The worst case of a single operation beside the average, per figure keys, policy,
    max_order and measure (split steps per allocation, merge steps per free, orders scanned per
    allocation).

    `mean`, `lo`, `hi`: the average per operation (95% CI over seeds); `max_mean`, `max_lo`,
    `max_hi`: the most one operation did (the model's max_* counters; NaN for results without
    them); `bound`: the most the algorithm allows: one allocation of order o splits at most
    max_order - o times (expand() from a max_order block), one free merges at most
    max_order - o times (__free_one_page()), and __rmqueue_smallest() probes at most
    max_order - o + 1 free lists of the requested migratetype before falling back."""
    keys = [k for k in FIGURE_KEYS if k in ratios] + (["policy"] if "policy" in ratios else [])
    avg = ratios[ratios["metric"].isin(list(WORST_OF))]
    s = summarise(avg, keys + ["max_order", "metric"], "value")
    cols = list(s.columns) + ["max_mean", "max_lo", "max_hi", "min_order", "bound"]
    if s.empty:
        return pd.DataFrame(columns=cols)
    worst = ratios[ratios["metric"].isin(list(WORST_OF.values()))].copy()
    if not worst.empty:
        back = {v: k for k, v in WORST_OF.items()}
        worst["metric"] = worst["metric"].map(back)
        w = summarise(worst, keys + ["max_order", "metric"], "value").rename(
            columns={"mean": "max_mean", "lo": "max_lo", "hi": "max_hi"}).drop(columns=["n", "pooled"])
        s = s.merge(w, on=keys + ["max_order", "metric"], how="left")
    else:
        s["max_mean"] = s["max_lo"] = s["max_hi"] = np.nan
    lo = s["order_mix"].map(smallest_order) if "order_mix" in s else pd.Series(0, index=s.index)
    extra = s["metric"].map({"split_per_alloc": 0, "merge_per_free": 0, "scanned_per_alloc": 1})
    s["min_order"] = lo.astype(int)
    s["bound"] = (s["max_order"].astype(int) - s["min_order"] + extra).astype(float)
    return s[cols]


# -- probes ---------------------------------------------------------------------------------------

PROBE_COL = re.compile(r"^probe(\d+)_(virtio_mem|[a-z]+)_(.+)$")   # kind as the column names spell it
PROBE_KINDS = ("contig", "hugepages", "gigantic", "offline", "cma", "compact")
PROBE_NOUNS = {
    "contig": "alloc_contig_range()", "hugepages": "huge page (buddy allocation)",
    "gigantic": "gigantic page (alloc_contig_pages())", "offline": "memory-block offline",
    "cma": "cma_alloc()", "compact": "full compaction",
}


def probe_label(spec: str, regime: str | None = None) -> str:
    """A short reading of a probe spec: 'contig:size=2M,attempts=32' with the cell's isolation
    'maxorder' -> 'contig 2M, maxorder isolation'."""
    kind, _, rest = spec.partition(":")
    p = dict(x.split("=", 1) for x in rest.split(",") if "=" in x)
    if kind == "contig":
        regime = p.get("isolation", regime)
        return f"contig {p.get('size', '?')}" + (f", {regime} isolation" if regime not in (None, "-") else "")
    if kind == "hugepages":
        return f"hugepages order {p.get('order', '?')}"
    if kind == "gigantic":
        return f"gigantic {p.get('size', '?')}"
    if kind == "offline":
        return f"offline {p.get('block', '?')} blocks"
    if kind == "cma":
        return f"cma {p.get('size', '?')}"
    if kind == "virtio-mem":
        regime = p.get("isolation", regime)
        return (f"virtio-mem unplug {p.get('unplug', '?')}"
                + (f", {regime} isolation" if regime not in (None, "-") else ""))
    return kind


def probe_results(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, probe): what the probe asked, obtained, and why it failed.

    Probe columns are positional (`probe<i>_<kind>_<field>`, farm/sweep/results.py); the probe's
    canonical spec is item i of the cell's `probe` parameter. Columns: the parameters, index,
    kind, spec, label, request_order (log2 of the pages asked at once), size (bytes or NaN),
    regime (contig isolation: pageblock or maxorder), asked, obtained, success_rate,
    pages_migrated, fail_<reason> for every reason met anywhere (0 where not met), and
    hazard_<name> where the probe reports hazards (offline: pages lost, pages freed beyond the
    block)."""
    d = normalise_params(ok_cells(df))
    pairs: dict[tuple[int, str], list[str]] = {}
    for c in d.columns:
        m = PROBE_COL.match(c)
        if m:
            pairs.setdefault((int(m.group(1)), m.group(2)), []).append(c)
    params = param_columns(d)
    frames = []
    for (i, kind), cols in sorted(pairs.items()):
        prefix = f"probe{i}_{kind}_"
        asked_col = prefix + "asked"
        if asked_col not in d:
            continue
        sub = d[d[asked_col].notna()]
        if sub.empty:
            continue
        f = sub[params].copy()
        f["row"] = sub.index
        f["index"] = i
        f["kind"] = kind.replace("_", "-")
        if "probe" in sub:
            f["spec"] = [(str(s).split(LIST_SEP)[i] if len(str(s).split(LIST_SEP)) > i else kind)
                         for s in sub["probe"]]
        else:
            f["spec"] = kind
        for field in ("asked", "obtained", "success_rate", "pages_migrated"):
            f[field] = _col(sub, prefix + field)
        size = pd.Series(np.nan, index=sub.index)
        order = pd.Series(np.nan, index=sub.index)
        if kind == "hugepages" and prefix + "params_order" in sub:
            order = pd.to_numeric(sub[prefix + "params_order"], errors="coerce")
            size = (2.0 ** order) * (1 << PAGE_SHIFT)
        for key in ("size", "block"):
            if kind in ("contig", "gigantic", "offline", "cma") and prefix + f"params_{key}" in sub:
                size = sub[prefix + f"params_{key}"].map(lambda v: float(size_bytes(v)) if v == v else np.nan)
                order = np.log2(size / (1 << PAGE_SHIFT))
        if kind == "virtio_mem" and prefix + "subblock" in sub:
            # the driver asks alloc_contig_range() for a subblock (a big block in BBM) at a time
            size = pd.to_numeric(sub[prefix + "subblock"], errors="coerce").astype(float)
            order = np.log2(size / (1 << PAGE_SHIFT))
        f["size"] = size.astype(float)
        f["size_label"] = f["size"].map(size_text)
        f["request_order"] = order.astype(float)
        if kind in ("contig", "virtio_mem"):
            own = sub.get(prefix + "params_isolation")
            cell = sub["isolation"] if "isolation" in sub else pd.Series("pageblock", index=sub.index)
            f["regime"] = [o if isinstance(o, str) else c for o, c in
                           zip(own if own is not None else [None] * len(sub), cell)]
        else:
            f["regime"] = "-"
        for c in cols:
            if c.startswith(prefix + "fail_"):
                f["fail_" + c[len(prefix + "fail_"):]] = pd.to_numeric(sub[c], errors="coerce").fillna(0)
            elif c.startswith(prefix + "hazards_"):
                f["hazard_" + c[len(prefix + "hazards_"):]] = pd.to_numeric(sub[c], errors="coerce")
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=params + ["index", "kind", "spec", "label", "request_order", "size",
                                              "regime", "size_label", "asked", "obtained",
                                              "success_rate", "pages_migrated"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    for c in out.columns:
        if c.startswith("fail_"):
            out[c] = out[c].fillna(0)
    out["label"] = [probe_label(spec, regime) for spec, regime in zip(out["spec"], out["regime"])]
    return out


def with_success(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Metric]]:
    """`derive(df)` plus one column per probe (its success rate in that cell) and the Metric of each:
    'success: contig 2M', higher is better."""
    d = derive(df)
    probes = success_probes(probe_results(df))
    metrics = []
    for label in sort_values("label", probes["label"].unique().tolist()) if len(probes) else []:
        name = f"success: {label}"
        per_row = probes[probes["label"] == label].groupby("row")["success_rate"].mean()
        d[name] = per_row.reindex(d.index)
        metrics.append(Metric(name, f"success rate, {label}", "share", "higher", "success",
                              lambda f, n=name: f[n]))
    return d, metrics


def success_probes(probes: pd.DataFrame) -> pd.DataFrame:
    """Probes whose success rate means something (full compaction always 'succeeds')."""
    return probes[(probes["kind"] != "compact") & probes["success_rate"].notna()]


def success_heatmaps(probes: pd.DataFrame) -> pd.DataFrame:
    """Mean success rate per workload, probe label, pageblock_order and max_order (pooled over
    seeds and every other parameter). Columns: workload, label, pageblock_order, max_order,
    success (0..1), cells."""
    p = success_probes(probes)
    cols = ["workload", "label", "pageblock_order", "max_order", "success", "cells"]
    if p.empty:
        return pd.DataFrame(columns=cols)
    g = p.groupby(["workload", "label", "pageblock_order", "max_order"], sort=True)["success_rate"]
    out = g.agg(["mean", "size"]).reset_index().rename(columns={"mean": "success", "size": "cells"})
    return out[cols]


def success_by(probes: pd.DataFrame, by: Sequence[str], kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Success rate mean and 95% CI over seeds per `by` (other parameters pooled per seed)."""
    p = success_probes(probes)
    if kinds is not None:
        p = p[p["kind"].isin(kinds)]
    return summarise(p, list(by), "success_rate", bounds=(0.0, 1.0))


def failure_reasons(probes: pd.DataFrame) -> pd.DataFrame:
    """Failure reasons per workload and probe: count and share of the attempts (asked).

    A reason counts ranges or blocks tried: alloc_contig_pages() may skip ranges before it
    succeeds, so a gigantic-page probe can report reasons for a success. Columns: workload,
    label, kind, reason, count, asked, per_attempt."""
    cols = ["workload", "label", "kind", "reason", "count", "asked", "per_attempt"]
    fail = [c for c in probes.columns if c.startswith("fail_")]
    if probes.empty or not fail:
        return pd.DataFrame(columns=cols)
    g = probes.groupby(["workload", "label", "kind"], sort=True)
    asked = g["asked"].sum()
    counts = g[fail].sum()
    rows = []
    for key, row in counts.iterrows():
        for c in fail:
            n = float(row[c])
            if n > 0:
                a = float(asked.loc[key])
                rows.append(list(key) + [c[len("fail_"):], n, a, n / a if a else np.nan])
    return pd.DataFrame(rows, columns=cols)


# -- pageblock mix and fragmentation ---------------------------------------------------------------

def mix_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell the mix metrics (pageblocks by type, mixed blocks, fallbacks, indices) in long
    form. Columns: parameters..., metric, value."""
    d = derive(df)
    names = [m.name for m in MIX_METRICS if m.name in d]
    params = param_columns(d)
    if d.empty:
        return pd.DataFrame(columns=params + ["metric", "value"])
    return d.melt(id_vars=params, value_vars=names, var_name="metric", value_name="value")


def mix_summary(mix: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean and CI over seeds of each mix metric per `by` + max_order."""
    return summarise(mix, list(by) + ["max_order", "metric"], "value")


def pageblock_types(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean share of pageblocks of each migratetype per `by` + max_order.
    Columns: by..., max_order, type, share (0..1)."""
    d = normalise_params(ok_cells(df))
    cols = [f"pagetypeinfo_blocks_{t}" for t in MIGRATETYPES if f"pagetypeinfo_blocks_{t}" in d]
    if d.empty or not cols:
        return pd.DataFrame(columns=list(by) + ["max_order", "type", "share"])
    total = _blocks_total(d)
    f = d[list(by) + ["max_order"]].copy()
    for c in cols:
        f[c.split("_")[-1]] = pd.to_numeric(d[c], errors="coerce") / total
    long = f.melt(id_vars=list(by) + ["max_order"], var_name="type", value_name="share")
    out = long.groupby(list(by) + ["max_order", "type"], sort=True)["share"].mean().reset_index()
    return out[out.groupby("type")["share"].transform("max") > 0].reset_index(drop=True)


# -- what the results are ------------------------------------------------------------------------

def provenance(df: pd.DataFrame, manifest: dict | None = None) -> dict[str, Any]:
    """Where the results come from: sweeps, model versions, cell counts, axes, seeds, errors."""
    manifest = manifest or {}
    status = df["status"].value_counts().to_dict() if "status" in df else {"ok": len(df)}
    sweeps = []
    names = sort_values("sweep", df["sweep"].dropna().unique().tolist()) if "sweep" in df else []
    described = manifest.get("sweeps", {})
    for name in names:
        sub = df[df["sweep"] == name]
        info = described.get(name, {})
        sweeps.append({
            "name": name, "file": info.get("file"), "description": info.get("description"),
            "cells": len(sub), "ok": int((sub.get("status") == "ok").sum()) if "status" in sub else len(sub),
            "planned": info.get("cells"),
            "model_versions": sort_values("v", sub["model_version"].dropna().unique().tolist())
            if "model_version" in sub else [],
        })
    versions = sort_values("v", df["model_version"].dropna().unique().tolist()) if "model_version" in df else []
    axes = {}
    vary = varying_params(df)
    dependent = dependent_params(df, vary)
    for name in vary:
        if name not in dependent:
            axes[name] = sort_values(name, df[name].map(_key).unique().tolist())
    seeds = sort_values("seed", df["seed"].dropna().unique().tolist()) if "seed" in df else []
    errors = []
    if "status" in df and "error" in df:
        err = df[df["status"] == "error"]
        for msg, n in err["error"].fillna("(no message)").value_counts().sort_index().items():
            errors.append({"error": str(msg), "cells": int(n)})
    return {"cells": len(df), "ok": int(status.get("ok", 0)), "error": int(status.get("error", 0)),
            "sweeps": sweeps, "model_versions": versions, "axes": axes,
            "seeds": [int(s) for s in seeds], "errors": errors, "dependent": dependent}
