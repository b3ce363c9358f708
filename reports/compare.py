"""Comparison of two result sets, the way kernel developers compare kernels (mmtests compare-kernels).

Two result folders (cells matched by their parameters, seeds as the samples), or two values of
one axis inside one folder (`policy=v6.1,v6.15`: cells matched by every other parameter). Per
measure and matched configuration: the baseline mean, the other mean, the % change with
better-is-positive (costs: lower is better; success rates: higher is better), and `*` around
the change when the two 95% confidence intervals do not overlap; per measure a Gmean line (the
geometric means of the two columns and their % change).

    split steps per allocation
    Amean     max_order 12, v6.15          0.3586 (   0.00%)       0.3590 *  -0.11%*
    Gmean     18 configurations            0.3585 (   0.00%)       0.3588 (  -0.08%)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import figures as F
from . import frames as T
from .fmt import num
from .render import Bullets, Document, Pre, Section, Table
from .stats import change_pct, gmean, mean_ci, significant

TOP_CHANGES = 15
PER_METRIC = 4


class CompareError(ValueError):
    """A comparison that cannot be made as asked (one line for the user)."""


@dataclass
class Side:
    """One of the two result sets: its name, its cells and where they came from."""
    name: str
    df: pd.DataFrame
    source: str
    manifest: dict = field(default_factory=dict)


# -- matching -------------------------------------------------------------------------------------

def parse_axis(text: str) -> tuple[str, list[str]]:
    """'policy=v6.1,v6.15' -> ('policy', ['v6.1', 'v6.15'])."""
    name, eq, values = text.partition("=")
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not eq or not name.strip() or len(vals) != 2:
        raise CompareError(f"--axis: expected NAME=BASELINE,OTHER such as policy=v6.1,v6.15, got {text!r}")
    return name.strip(), vals


def _same(column: pd.Series, text: str) -> pd.Series:
    """Cells whose parameter value reads as `text` (10 = '10', False = 'false', 4G = '4G')."""
    t = text.strip().lower()
    return column.map(lambda v: str(T._key(v)).lower() == t)


def split_axis(df: pd.DataFrame, axis: str, source: str, manifest: dict | None = None) -> tuple[Side, Side]:
    name, (v1, v2) = parse_axis(axis)
    if name not in df.columns or name not in T.PARAM_NAMES:
        raise CompareError(f"--axis: {name!r} is not a parameter of these results")
    values = T.sort_values(name, df[name].map(T._key).unique().tolist())
    sides = []
    for v in (v1, v2):
        sub = df[_same(df[name], v)]
        if sub.empty:
            raise CompareError(f"--axis: no cells with {name} = {v} (values: "
                               f"{', '.join(str(x) for x in values)})")
        sides.append(Side(f"{name}={v}", sub, source, manifest or {}))
    return sides[0], sides[1]


def match_keys(a: pd.DataFrame, b: pd.DataFrame, exclude: Sequence[str] = ()) -> tuple[list[str], dict]:
    """The parameters that match a cell of A with a cell of B, and what differs between the sets.

    Left out of the key: the seed (the samples), derived values, `exclude` (the compared axis), a
    parameter that is constant in each set but different between them (the thing compared, such
    as the policy of two runs) and a parameter only one set has. Returns (key, notes) with notes
    {'differs': {name: (a value, b value)}, 'only_a': [...], 'only_b': [...]}."""
    pa, pb = T.param_columns(a), T.param_columns(b)
    skip = set(exclude) | {"seed"} | set(T.DERIVED_PARAMS)
    key, differs = [], {}
    for p in pa:
        if p in skip or p not in pb:
            continue
        va, vb = set(a[p].map(T._key)), set(b[p].map(T._key))
        if len(va) == 1 and len(vb) == 1 and va != vb:
            differs[p] = (next(iter(va)), next(iter(vb)))
            continue
        key.append(p)
    notes = {"differs": differs, "only_a": [p for p in pa if p not in pb and p not in skip],
             "only_b": [p for p in pb if p not in pa and p not in skip]}
    return key, notes


def _config_label(values: dict[str, Any], shown: Sequence[str]) -> str:
    if not shown:
        return "all cells"
    return ", ".join(T.format_value(k, values[k]) for k in shown)


# -- statistics -------------------------------------------------------------------------------------

@dataclass
class Comparison:
    baseline: Side
    other: Side
    key: list[str]
    notes: dict
    rows: pd.DataFrame          # one row per (metric, configuration)
    gmeans: pd.DataFrame        # one row per metric
    metrics: list               # the Metric objects compared, in order
    matched: int
    only_baseline: int
    only_other: int
    shown: list = field(default_factory=list)   # key parameters that vary (they label the rows)
    dependent: dict = field(default_factory=dict)  # varying key parameters set by another one


ROW_COLUMNS = ["metric", "label", "better", "config", "base_mean", "base_lo", "base_hi", "base_n",
               "other_mean", "other_lo", "other_hi", "other_n", "change", "significant"]


def compare_rows(a: pd.DataFrame, b: pd.DataFrame, key: Sequence[str], metrics: Sequence,
                 shown: Sequence[str]) -> pd.DataFrame:
    """Per metric and configuration present in both: the two means with 95% CIs over seeds, the %
    change (better is positive) and whether the intervals do not overlap."""
    key = list(key)
    rows = []
    ga = {k if isinstance(k, tuple) else (k,): g for k, g in (a.groupby(key, sort=True) if key else [((), a)])}
    gb = {k if isinstance(k, tuple) else (k,): g for k, g in (b.groupby(key, sort=True) if key else [((), b)])}
    common = [k for k in ga if k in gb]
    for m in metrics:
        for k in common:
            xa = pd.to_numeric(ga[k][m.name], errors="coerce") if m.name in ga[k] else pd.Series(dtype=float)
            xb = pd.to_numeric(gb[k][m.name], errors="coerce") if m.name in gb[k] else pd.Series(dtype=float)
            ea, eb = mean_ci(xa.tolist()), mean_ci(xb.tolist())
            if ea.n == 0 or eb.n == 0:
                continue
            config = _config_label(dict(zip(key, k)), shown)
            rows.append([m.name, m.label, m.better, config, ea.mean, ea.lo, ea.hi, ea.n,
                         eb.mean, eb.lo, eb.hi, eb.n, change_pct(ea.mean, eb.mean, m.higher_is_better),
                         significant(ea, eb)])
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def gmean_rows(rows: pd.DataFrame, metrics: Sequence) -> pd.DataFrame:
    """Per metric: geometric means of the baseline and other means over the configurations where
    both are positive, and the % change between them (better is positive)."""
    out = []
    for m in metrics:
        r = rows[rows["metric"] == m.name]
        ok = r[(r["base_mean"] > 0) & (r["other_mean"] > 0)]
        gb, go = gmean(ok["base_mean"]), gmean(ok["other_mean"])
        out.append([m.name, m.label, m.better, len(ok), len(r), gb, go, change_pct(gb, go, m.higher_is_better)])
    return pd.DataFrame(out, columns=["metric", "label", "better", "configs", "rows", "base_gmean",
                                      "other_gmean", "change"])


def _comparable_metrics(da: pd.DataFrame, db: pd.DataFrame, metrics: Sequence) -> list:
    out = []
    for m in metrics:
        va = pd.to_numeric(da[m.name], errors="coerce") if m.name in da else pd.Series(dtype=float)
        vb = pd.to_numeric(db[m.name], errors="coerce") if m.name in db else pd.Series(dtype=float)
        if va.notna().any() and vb.notna().any() and ((va.fillna(0) != 0).any() or (vb.fillna(0) != 0).any()):
            out.append(m)
    return out


def compare(baseline: Side, other: Side, exclude: Sequence[str] = ()) -> Comparison:
    """Match the cells of the two sides and compute every comparison row and Gmean line."""
    da, ma = T.with_success(baseline.df)
    db, mb = T.with_success(other.df)
    if da.empty or db.empty:
        empty = baseline.name if da.empty else other.name
        raise CompareError(f"{empty}: no finished cells to compare")
    key, notes = match_keys(da, db, exclude)
    success = {m.name: m for m in ma + mb}
    metrics = _comparable_metrics(da, db, list(T.CELL_METRICS) + list(success.values()))
    # configurations: show the key parameters that vary in either set
    both = pd.concat([da[key], db[key]], ignore_index=True) if key else pd.DataFrame()
    vary = [k for k in key if both[k].map(T._key).nunique() > 1]
    dependent = T.dependent_params(both, vary) if vary else {}
    shown = [k for k in vary if k not in dependent]
    rows = compare_rows(da, db, key, metrics, shown)
    keys_a = set(map(tuple, da[key].map(T._key).itertuples(index=False))) if key else {()}
    keys_b = set(map(tuple, db[key].map(T._key).itertuples(index=False))) if key else {()}
    return Comparison(baseline, other, key, notes, rows, gmean_rows(rows, metrics), metrics,
                      len(keys_a & keys_b), len(keys_a - keys_b), len(keys_b - keys_a), shown, dependent)


# -- text table (mmtests compare-kernels layout) ----------------------------------------------------

def _change_cell(change: float, sig: bool) -> str:
    if change != change:
        return "(    n/a )"
    return f"*{change:7.2f}%*" if sig else f"({change:7.2f}%)"


def text_table(c: Comparison) -> str:
    """The comparison as the fixed-width table of mmtests compare-kernels."""
    if c.rows.empty:
        return f"{c.baseline.name} vs {c.other.name}: no configuration present in both\n"
    label_w = max([len(x) for x in c.rows["config"]] + [len("configurations") + 4, 12])
    val_w = 12
    head_a, head_b = c.baseline.name, c.other.name
    w_cell = val_w + 12
    lines = [f"{'':<{10 + label_w}}{head_a:>{w_cell}}{head_b:>{w_cell - 1}}"]
    for m in c.metrics:
        r = c.rows[c.rows["metric"] == m.name]
        if r.empty:
            continue
        lines.append("")
        lines.append(f"{m.label} ({m.unit}, {m.better} is better)")
        for _, row in r.iterrows():
            lines.append(f"{'Amean':<10}{row['config']:<{label_w}}"
                         f"{num(row['base_mean']):>{val_w}} (   0.00%) "
                         f"{num(row['other_mean']):>{val_w}} {_change_cell(row['change'], row['significant'])}")
        g = c.gmeans[c.gmeans["metric"] == m.name].iloc[0]
        lines.append(f"{'Gmean':<10}{str(int(g['configs'])) + ' configurations':<{label_w}}"
                     f"{num(g['base_gmean']):>{val_w}} (   0.00%) "
                     f"{num(g['other_gmean']):>{val_w}} {_change_cell(g['change'], False)}")
    return "\n".join(lines) + "\n"


# -- the document -----------------------------------------------------------------------------------

def _side_text(s: Side) -> str:
    info = T.provenance(s.df, s.manifest)
    sweeps = ", ".join(f"`{x['name']}`" for x in info["sweeps"]) or "unnamed"
    return (f"{s.name}: `{s.source}`, sweep {sweeps}, model version "
            f"{', '.join(info['model_versions']) or 'unknown'}, {info['cells']} cells "
            f"({info['ok']} ok, {info['error']} errors)")


def changes_frame(c: Comparison, top: int = TOP_CHANGES, per_metric: int = PER_METRIC) -> pd.DataFrame:
    """The `top` rows with the largest |% change| (finite, not 0), at most `per_metric` of one
    measure so that one noisy measure does not fill the figure."""
    r = c.rows[np.isfinite(c.rows["change"].astype(float)) & (c.rows["change"] != 0)].copy()
    if r.empty:
        return r.assign(row=pd.Series(dtype=str))
    r["size"] = r["change"].abs()
    r = r.sort_values(["size", "label", "config"], ascending=[False, True, True], kind="stable")
    r = r[r.groupby("metric").cumcount() < per_metric].head(top)
    r["row"] = [f"{lb}: {cf}" if cf != "all cells" else lb for lb, cf in zip(r["label"], r["config"])]
    return r.drop(columns=["size"]).reset_index(drop=True)


def build_document(c: Comparison, table: str, title: str) -> Document:
    doc = Document(title)
    data = Section("Data")
    data.blocks.append(Bullets([f"baseline {_side_text(c.baseline)}", f"compared {_side_text(c.other)}"]))
    va = sorted(c.baseline.df["model_version"].dropna().unique().tolist()) if "model_version" in c.baseline.df else []
    vb = sorted(c.other.df["model_version"].dropna().unique().tolist()) if "model_version" in c.other.df else []
    if va != vb:
        data.blocks.append(f"The two result sets were made by different model versions ({c.baseline.name}: "
                           f"{', '.join(va) or 'unknown'}; {c.other.name}: {', '.join(vb) or 'unknown'}): a "
                           "difference may come from a change of the model, not from the parameters.")
    else:
        data.blocks.append(f"Both result sets were made by model version {', '.join(va) or 'unknown'}.")
    if c.notes["differs"]:
        data.blocks.append("What differs between the sets: " + "; ".join(
            f"`{k}` {a} → {b}" for k, (a, b) in c.notes["differs"].items()) + ".")
    for side, names in (("baseline", c.notes["only_a"]), ("compared", c.notes["only_b"])):
        if names:
            data.blocks.append(f"Parameters only the {side} set has (not used to match cells): "
                               + ", ".join(f"`{n}`" for n in names) + ".")
    same = len(c.key) - len(c.shown) - len(c.dependent)
    matched_by = ", ".join(f"`{k}`" for k in c.shown) or "nothing that varies (one configuration each)"
    extra = []
    if c.dependent:
        by: dict[str, list[str]] = {}
        for p, q in c.dependent.items():
            by.setdefault(q, []).append(p)
        extra += [f"{len(ps)} set by `{q}`" for q, ps in by.items()]
    if same:
        extra.append(f"{same} equal in every cell")
    data.blocks.append(
        f"Cells are matched by {matched_by}" + (f" (and parameters: {', '.join(extra)})" if extra else "")
        + f"; seeds are the samples. {c.matched} configurations are in both sets, {c.only_baseline} only in "
        f"the baseline, {c.only_other} only in the compared set (left out).")
    summary = Section("Summary")
    summary.blocks.append(
        "% change: positive is better (for costs lower is better, for success rates higher is better). "
        "`*` marks a change where the 95% confidence intervals of the two means (Student t over seeds) "
        "do not overlap, as mmtests compare-kernels does. Gmean: the geometric means of the two columns "
        "over the configurations where both are positive.")
    rows = [[g["label"], g["better"], str(int(g["configs"])), num(g["base_gmean"]), num(g["other_gmean"]),
             "n/a" if g["change"] != g["change"] else f"{g['change']:+.2f}%",
             str(int(c.rows[(c.rows["metric"] == g["metric"]) & c.rows["significant"]
                             & (c.rows["change"] > 0)].shape[0])),
             str(int(c.rows[(c.rows["metric"] == g["metric"]) & c.rows["significant"]
                             & (c.rows["change"] < 0)].shape[0]))]
            for _, g in c.gmeans.iterrows()]
    summary.blocks.append(Table(["measure", "better", "configurations", f"Gmean {c.baseline.name}",
                                 f"Gmean {c.other.name}", "change", "better *", "worse *"], rows,
                                align="llrrrrrr"))
    top = changes_frame(c)
    if not top.empty:
        summary.blocks.append(F.FigureSpec(
            name="largest-changes",
            title=f"The largest changes from {c.baseline.name} to {c.other.name}",
            caption=(f"The {len(top)} measure and configuration pairs with the largest % change (better is "
                     f"positive), at most {PER_METRIC} per measure. Solid bars and `*`: the 95% confidence intervals over seeds do not overlap; "
                     "hatched: they overlap, the change may be noise."),
            data=top, draw_fn=F.draw_changes, options=dict(label="row", value="change", mark="significant")))
    full = Section("All measures", [Pre(table)])
    doc.sections = [data, summary, full]
    return doc


def title_of(c: Comparison) -> str:
    return f"buddyfarm comparison: {c.baseline.name} vs {c.other.name}"
