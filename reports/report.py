"""The single-sweep report: a results DataFrame -> a `Document` of sections, tables and figure specs.

Which figures a report holds depends on what the results contain: slowdown figures need more
than one max_order, success figures need probes, a fragmentation figure needs a metric that is
not the same everywhere. What is left out is said in words, with the reason.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import figures as F
from . import frames as T
from .fmt import ci_text, num, pct, ratio
from .render import Bullets, Document, Section, Table

MAX_ORDER_NOTE = ("max_order is the largest order a free block can have, inclusive (MAX_PAGE_ORDER, "
                  "kernel >= 6.4 convention; x86-64 default 10 = 4 MiB blocks).")
CI_NOTE = "Error bars: 95% confidence intervals of the mean over seeds (Student t)."


def values_text(name: str, values: Sequence[Any]) -> str:
    """The values of one parameter as a list after its name ("pageblock_order (9, 11)")."""
    return ", ".join(T.format_value(name, v) if name == "pcp" else str(v) for v in values)


def cell_text(name: str, v: Any) -> str:
    """A parameter value in a table column headed by the parameter's name."""
    return T.format_value(name, v) if name == "pcp" else str(v)


def _pooled_text(pooled: dict[str, list]) -> str:
    if not pooled:
        return ""
    return "; averaged over " + "; ".join(f"{k} ({values_text(k, v)})" for k, v in pooled.items())


def _group_title(keys: dict[str, Any]) -> str:
    return ", ".join(f"{T.format_value(k, v)}" if k not in ("memory",) else f"{v} of memory"
                     for k, v in keys.items())


def _slug(*parts: Any) -> str:
    import re
    return re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")


def _groups(frame: pd.DataFrame, keys: Sequence[str]):
    """(dict of key values, sub-frame) for each combination of the keys that vary in `frame`."""
    vary = [k for k in keys if k in frame and frame[k].nunique() > 1]
    if not vary:
        yield {}, frame
        return
    for key, sub in frame.groupby(vary, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(vary, key)), sub


def _allocation_noun(order_mix: Any, workload: Any) -> str:
    if workload not in (None, "smallpages"):
        return "an allocation"
    if order_mix in (None, "-", "0=1"):
        return "an order-0 allocation"
    return f"a small allocation (orders {order_mix})"


# -- data section -------------------------------------------------------------------------------------

def data_section(df: pd.DataFrame, source: str, manifest: dict | None) -> Section:
    info = T.provenance(df, manifest)
    s = Section("Data")
    s.blocks.append(f"Results folder `{source}`: {info['cells']} cells stored, {info['ok']} ok, "
                    f"{info['error']} errors.")
    items = []
    for sw in info["sweeps"]:
        planned = f" of {sw['planned']} planned" if sw.get("planned") is not None else ""
        where = f" (`{sw['file']}`)" if sw.get("file") else ""
        desc = f": {sw['description']}" if sw.get("description") else ""
        items.append(f"sweep `{sw['name']}`{where}{desc}; {sw['cells']} cells{planned}, {sw['ok']} ok; "
                     f"model version {', '.join(sw['model_versions']) or 'unknown'}")
    if items:
        s.blocks.append(Bullets(items))
    versions = info["model_versions"]
    if len(versions) > 1:
        s.blocks.append(f"These results were made by {len(versions)} different model versions "
                        f"({', '.join(versions)}). Cells of different versions may differ because the "
                        "model changed, not because of their parameters.")
    elif versions:
        s.blocks.append(f"Every cell was made by model version {versions[0]}.")
    if info["axes"]:
        rows = [[f"`{k}`", values_text(k, v)] for k, v in info["axes"].items()]
        s.blocks.append(Table(["parameter", "values"], rows, align="ll"))
    if info["dependent"]:
        by: dict[str, list[str]] = {}
        for p, q in info["dependent"].items():
            by.setdefault(q, []).append(f"`{p}`")
        s.blocks.append("Set by another parameter rather than swept: " + "; ".join(
            f"{', '.join(ps)} by `{q}`" for q, ps in by.items()) + ".")
    pairs = T.what_if_pairs(T.ok_cells(df))
    if pairs:
        s.blocks.append("What-ifs: " + "; ".join(
            f"{n} cells with {T.format_value('regime', iso)} and policy {pol}" for iso, pol, n in pairs)
            + ". No kernel paired that isolation regime with that policy (MAX_ORDER-block isolation is "
            "before 5.19, pageblock isolation from 5.19 on; v5.4 is the only policy before 5.19): these "
            "cells answer \"what if\", not what a kernel did.")
    if info["seeds"]:
        s.blocks.append(f"Seeds: {', '.join(str(x) for x in info['seeds'])} "
                        f"({len(info['seeds'])} per configuration).")
    if info["errors"]:
        rows = [[e["error"], str(e["cells"])] for e in info["errors"][:10]]
        s.blocks.append(Table(["error", "cells"], rows, caption=(
            "Cells stored as errors are left out of every figure and table below "
            "(`farm ls` prints the command that reruns each)."
            + (f" {len(info['errors']) - 10} more kinds of error are not listed." if len(info["errors"]) > 10 else "")),
            align="lr"))
    return s


# -- allocation slowdown -------------------------------------------------------------------------------

def _panel_labels(summary: pd.DataFrame) -> pd.Series:
    """One panel per pageblock_order (when it varies) naming the baseline of its ratios."""
    multi_pb = "pageblock_order" in summary and summary["pageblock_order"].nunique() > 1
    out = []
    for pb, b in zip(summary.get("pageblock_order", [None] * len(summary)), summary["baseline_max_order"]):
        head = f"pageblock_order {pb} · " if multi_pb else ""
        out.append(f"{head}vs max_order {int(b)}")
    return pd.Series(out, index=summary.index)


def slowdown_section(df: pd.DataFrame, findings: list[str]) -> Section:
    s = Section("Allocation slowdown")
    s.blocks.append(
        "The thread's first question: \"The bigger our MAX_ORDER, the slower it could be to allocate "
        "smaller pages. If we have 1G pages, splitting them down to 4k then takes 8 additional steps.\" "
        "Below, the buddy allocator's own work (split steps per allocation, merge steps per free, free-list "
        "orders probed per allocation) and the time per operation against max_order: amortised (the "
        "average over every operation of the workload) and worst case (the most one operation did), as "
        f"ratios to max_order {T.BASE_MAX_ORDER} of the same configuration and seed. {MAX_ORDER_NOTE}")
    ratios = T.slowdown_ratios(df)
    if ratios.empty or ratios["max_order"].nunique() < 2:
        s.blocks.append("These results hold a single max_order, so there is nothing to compare against: "
                        "no slowdown figures.")
        return s
    fig_keys = [k for k in T.FIGURE_KEYS if k in ratios]
    present = set(ratios.dropna(subset=["value"])["metric"])
    amortised = [m for m in T.SLOWDOWN_METRICS if m.name in present]
    worst = [m for m in T.WORST_METRICS if m.name in present]
    for keys, sub in _groups(ratios, fig_keys):
        sub = sub.dropna(subset=["value"])
        if sub.empty:
            continue
        title = _group_title(keys)
        display = [k for k in T.DISPLAY_KEYS if k in sub and (k == "policy" or sub[k].nunique() > 1)]
        summary = T.slowdown_summary(sub, display=fig_keys + display)
        summary["panel"] = _panel_labels(summary)
        pooled = T.pooled_over(sub, fig_keys + display)
        bases = sorted(set(int(b) for b in sub["baseline_max_order"]))
        fallback = [b for b in bases if b != T.BASE_MAX_ORDER]
        base_note = ""
        if fallback:
            base_note = (f" Configurations without a max_order {T.BASE_MAX_ORDER} cell are compared with their "
                         f"smallest max_order ({', '.join(map(str, fallback))}) instead, as their panel says "
                         "(pageblock_order may not exceed max_order).")
        seeds = int(summary["n"].max())
        slug = _slug("slowdown", *keys.values())
        lines = (". Colour: policy" + (", line style: per-cpu lists" if "pcp" in display else "") + ". ")
        for view, metrics, what in (
                ("amortised", amortised, "the average cost per operation"),
                ("worst", worst, "the most work a single operation did")):
            if not metrics:
                continue
            data = summary[summary["metric"].isin([m.name for m in metrics])].reset_index(drop=True)
            s.blocks.append(F.FigureSpec(
                name=f"{slug}-{view}",
                title=(f"{'Amortised' if view == 'amortised' else 'Worst case'}: {what}, relative to max_order "
                       f"{T.BASE_MAX_ORDER}" + (f" ({title})" if title else "")),
                caption=(f"Each point is the mean over {seeds} seeds of the ratio of {what} in a cell to the "
                         "same in the cell of the same configuration and seed at the baseline max_order "
                         f"(1 = no change; above 1 = more work){_pooled_text(pooled)}{lines}"
                         f"{CI_NOTE} {MAX_ORDER_NOTE}{base_note}"),
                data=data, draw_fn=F.draw_lines,
                options=dict(x="max_order", row="metric", col="panel", hue="policy",
                             style="pcp" if "pcp" in display else None, ratio_line=True, dodge=0.09,
                             xlabel=F.MAX_ORDER_LABEL, ylabels={m.name: "ratio to baseline" for m in metrics},
                             row_titles={m.name: m.label for m in metrics},
                             row_order=[m.name for m in metrics])))
        absolute = T.worst_case(sub[sub["baseline_max_order"] == bases[0]] if fallback else sub)
        if not absolute.empty:
            measured = absolute["max_mean"].notna().any()
            s.blocks.append(F.FigureSpec(
                name=f"{slug}-absolute",
                title="Average and worst case per operation in steps" + (f" ({title})" if title else ""),
                caption=("Solid: the average per operation. "
                         + ("Dashed: the most one operation did (the model's max_split_steps, max_merge_steps and "
                            "max_orders_scanned counters). " if measured else
                            "These results have no per-operation maxima (an older model version). ")
                         + "Black dotted: the most the algorithm allows: an allocation of order o splits at "
                         "most max_order - o times (a max_order block down to order o), a free merges at most "
                         "max_order - o times, and the search probes at most max_order - o + 1 free lists of "
                         "its migratetype before falling back to other migratetypes (which can probe more)"
                         f"{_pooled_text(T.pooled_over(sub, fig_keys + ['policy']))}. {CI_NOTE} {MAX_ORDER_NOTE}"),
                data=absolute, draw_fn=F.draw_worst_case,
                options=dict(metrics=[m for m in T.WORST_OF if m in set(absolute["metric"])],
                             metric_labels={m.name: m.label for m in T.SLOWDOWN_METRICS})))
        s.blocks += _slowdown_tables(sub, summary, display, amortised + worst, keys, findings, bases)
    return s


def _short_finding(whole: pd.DataFrame, top: int, base: int, wl: Any, om: Any, where: str,
                   noise: T.TimingNoise) -> str:
    """One line for the Findings: split steps amortised and worst case, and time when it differs by
    more than the machine's noise."""
    def get(metric: str, order: int):
        r = whole[(whole["metric"] == metric) & (whole["max_order"] == order)]
        return None if r.empty else r.iloc[0]

    head = (where + ": ") if where else ""
    noun = _allocation_noun(om, wl)
    parts = []
    a, a0 = get("split_per_alloc", top), get("split_per_alloc", base)
    if a is not None and a0 is not None:
        parts.append(f"at max_order {top} {noun} does {ratio(a['mean'])} times the split steps of max_order {base} "
                     f"on average ({ci_text(a['lo'], a['hi'])}; {num(a0['value_mean'])} → {num(a['value_mean'])} "
                     "per allocation)")
    w, w0 = get("max_split", top), get("max_split", base)
    if w is not None and w0 is not None:
        parts.append(f"{ratio(w['mean'])} times in the worst case ({num(w0['value_mean'])} → "
                     f"{num(w['value_mean'])} steps for one allocation)")
    t = get(noise.metric, top)
    if t is not None:
        how = "normalised to the calibration loop; " if noise.metric == "ns_per_op_norm" else ""
        if noise.beyond(t["lo"], t["hi"]):
            parts.append(f"time per operation {ratio(t['mean'])} times ({ci_text(t['lo'], t['hi'])}; {how}"
                         f"beyond the machine's noise of {noise.factor:.3f} times)")
        else:
            parts.append(f"time per operation within the machine's noise ({ratio(t['mean'])} times, "
                         f"{ci_text(t['lo'], t['hi'])}; {how}{_noise_text(noise)})")
    text = head + ", ".join(parts) + "."
    return text[0].upper() + text[1:]


def _noise_figures(noise: T.TimingNoise) -> str:
    """What the noise of the time measure is made of, in words."""
    parts = []
    if noise.within == noise.within:
        parts.append(f"the timing repeats of one cell differ by {noise.within:.3f} times")
    if noise.between == noise.between:
        parts.append(f"the seeds of one configuration by {noise.between:.3f} times")
    if not parts:
        return "the noise could not be measured: one seed and one timing run"
    return " and ".join(parts) + " in the median"


def _noise_text(noise: T.TimingNoise) -> str:
    return f"{_noise_figures(noise)}; `farm bench` measures time alone"


_PER = {"split_per_alloc": "per allocation", "merge_per_free": "per free", "scanned_per_alloc": "per allocation",
        "ns_per_op": "ns per operation", "ns_per_op_norm": "per operation", "max_split": "", "max_merge": "",
        "max_scanned": ""}


def _slowdown_tables(sub: pd.DataFrame, summary: pd.DataFrame, display: list[str], metrics, keys: dict,
                     findings: list[str], bases: list[int]) -> list:
    """The sentence answering the thread's question for this group, and the ratio table."""
    out = []
    base = T.BASE_MAX_ORDER if T.BASE_MAX_ORDER in bases else bases[0]
    at_base = sub[sub["baseline_max_order"] == base]
    top = int(at_base["max_order"].max())
    if top == base:
        return out
    fig_keys = [k for k in T.FIGURE_KEYS if k in sub]
    whole = T.slowdown_summary(at_base, display=fig_keys)
    noise = T.timing_noise(at_base)
    wl = sub["workload"].iloc[0] if "workload" in sub else None
    om = sub["order_mix"].iloc[0] if "order_mix" in sub else None
    phrases = {}
    for m in metrics:
        r = whole[(whole["metric"] == m.name) & (whole["max_order"] == top)]
        b = whole[(whole["metric"] == m.name) & (whole["max_order"] == base)]
        if r.empty or b.empty:
            continue
        r, b = r.iloc[0], b.iloc[0]
        unit = "" if m.name == "ns_per_op" else " " + m.unit
        per = (" " + _PER[m.name]) if _PER.get(m.name) else ""
        phrases[m.name] = (r["mean"], r["lo"], r["hi"],
                           f"{num(b['value_mean'])} → {num(r['value_mean'])}{unit}{per}")

    def say(name: str, template: str) -> str | None:
        if name not in phrases:
            return None
        x, lo, hi, values = phrases[name]
        return template.format(x=ratio(x)) + f" ({ci_text(lo, hi)}; {values})"

    clauses = []
    alloc = [p for p in (say("split_per_alloc", "does {x} times the split steps"),
                         say("scanned_per_alloc", "probes {x} times the free-list orders")) if p]
    if alloc:
        clauses.append(f"{_allocation_noun(om, wl)} " + " and ".join(alloc))
    p = say("merge_per_free", "a free does {x} times the merge steps")
    if p:
        clauses.append(p)
    p = _time_clause(phrases, noise)
    if p:
        clauses.append(p)
    pooled = T.pooled_over(at_base, fig_keys)
    where = _group_title(keys)
    context = ", ".join(x for x in (where, "mean over seeds" + _pooled_text(pooled)) if x)
    sentence = f"At max_order {top}, compared with max_order {base} ({context}), amortised: " + "; ".join(clauses) + "."
    worst = [p for p in (say("max_split", "one allocation took at most {x} times the split steps"),
                         say("max_merge", "one free at most {x} times the merge steps"),
                         say("max_scanned", "one allocation probed at most {x} times the free-list orders"))
             if p]
    if worst:
        sentence += " Worst case: " + "; ".join(worst) + "."
    else:
        lo = T.smallest_order(om)
        sentence += (f" Worst case, from the algorithm: one allocation splits at most {top - lo} times instead "
                     f"of {base - lo}.")
    out.append(sentence)
    findings.append(_short_finding(whole, top, base, wl, om, where, noise))
    # per configuration: ratio at the largest max_order, with its CI
    rows = []
    tab = summary[(summary["max_order"] == top) & (summary["baseline_max_order"] == base)]
    cfg_cols = list(display)
    shown = [m for m in metrics if m.name in set(tab["metric"])]
    for cfg, g in tab.groupby(cfg_cols, sort=False) if cfg_cols else [((), tab)]:
        cfg = cfg if isinstance(cfg, tuple) else (cfg,)
        row = [cell_text(k, v) for k, v in zip(cfg_cols, cfg)]
        for m in shown:
            r = g[g["metric"] == m.name]
            if r.empty:
                row.append("n/a")
                continue
            r = r.iloc[0]
            row.append(f"{ratio(r['mean'])} [{ratio(r['lo'])}, {ratio(r['hi'])}]")
        rows.append(row)
    pooled = _pooled_text(T.pooled_over(at_base, fig_keys + display))
    for group, what in (("slowdown", "amortised"), ("worst", "worst case")):
        idx = [i for i, m in enumerate(shown) if m.group == group]
        timed = any(shown[i].name in T.TIME_METRICS for i in idx)
        if rows and idx:
            out.append(Table(cfg_cols + [shown[i].label for i in idx],
                             [r[:len(cfg_cols)] + [r[len(cfg_cols) + i] for i in idx] for r in rows],
                             caption=(f"{what[0].upper() + what[1:]}: ratio to max_order {base} at max_order {top}, "
                                      f"mean [95% CI] over seeds{pooled}."
                                      + (" " + _noise_caption(noise) if timed else "")),
                             align="l" * len(cfg_cols) + "r" * len(idx)))
    return out


def _time_clause(phrases: dict, noise: T.TimingNoise) -> str | None:
    """The time per operation in the answer: as a difference only when its CI lies beyond the noise."""
    if noise.metric not in phrases:
        return None
    x, lo, hi, values = phrases[noise.metric]
    detail = f"{ci_text(lo, hi)}; {values}"
    if noise.metric == "ns_per_op_norm" and "ns_per_op" in phrases:
        detail += f"; {phrases['ns_per_op'][3]}"
    if noise.metric == "ns_per_op_norm":
        detail = "normalised to the calibration loop; " + detail
    if noise.beyond(lo, hi):
        return (f"an operation takes {ratio(x)} times the time ({detail}), beyond the machine's noise of "
                f"{noise.factor:.3f} times")
    return (f"the time per operation differs by no more than the machine's noise: {ratio(x)} times "
            f"({detail}), while {_noise_text(noise)}")


def _noise_caption(noise: T.TimingNoise) -> str:
    f = noise.factor
    if f != f:
        return ("The noise of the time measure could not be measured (one seed and one timing run): no time "
                "ratio is a finding.")
    what = "normalised time" if noise.metric == "ns_per_op_norm" else "time"
    return (f"A {what} ratio is a difference only when its 95% CI lies outside {1 / f:.3f}–{f:.3f}, the machine's "
            f"noise ({_noise_figures(noise)}).")


# -- contiguous-allocation success ---------------------------------------------------------------------

def success_section(df: pd.DataFrame, findings: list[str]) -> Section:
    s = Section("Contiguous-allocation success")
    s.blocks.append(
        "The thread's second and third questions: how often do contiguous allocations succeed "
        "(alloc_contig_range() for CMA, virtio-mem and gigantic pages; huge pages from the buddy "
        "allocator; memory-block offlining) as max_order and pageblock_order grow, and under which "
        "isolation regime: whole MAX_ORDER blocks (before 5.19) or pageblocks (5.19+). Probes run on "
        "the state each workload leaves behind.")
    probes = T.probe_results(df)
    sp = T.success_probes(probes)
    if sp.empty:
        s.blocks.append("These results hold no probes, so there are no success figures. A sweep measures "
                        "contiguous allocations with the `probe` parameter, e.g. "
                        "`probe = [[\"contig:size=2M,attempts=32\", \"hugepages:order=9,count=64\"]]`.")
        return s
    seeds = sp["seed"].nunique() if "seed" in sp else 1
    pooled_all = T.pooled_over(sp, ["workload", "label", "max_order", "pageblock_order"])
    # heatmaps, one figure per workload
    heat = T.success_heatmaps(probes)
    if heat["max_order"].nunique() * heat["pageblock_order"].nunique() > 1:
        for keys, sub in _groups(heat, ["workload"]):
            wl = keys.get("workload", sub["workload"].iloc[0])
            s.blocks.append(F.FigureSpec(
                name=_slug("success-heatmap", wl),
                title=f"Success rate of each probe over max_order and pageblock_order ({wl} workload)",
                caption=(f"Share of the requests each probe made that succeeded, mean over {seeds} seeds"
                         f"{_pooled_text(pooled_all)}; one panel per probe (contig = alloc_contig_range() on "
                         "aligned ranges, hugepages = buddy allocations with compaction, gigantic = "
                         "alloc_contig_pages(), offline = offlining every memory block). Empty squares: "
                         f"combinations not run (pageblock_order may not exceed max_order). {MAX_ORDER_NOTE}"),
                data=sub.reset_index(drop=True), draw_fn=F.draw_heatmaps,
                options=dict(panel="label")))
    # success against request order
    if sp["request_order"].nunique() > 1:
        data = T.success_by(probes, ["workload", "kind", "request_order"])
        s.blocks.append(F.FigureSpec(
            name="success-vs-request-order",
            title="Success rate against the order of the request",
            caption=("Mean success rate per probe kind against the request's order (log2 of the 4 KiB pages "
                     "asked for at once: 9 = 2 MiB, 13 = 32 MiB, 18 = 1 GiB), over every max_order and "
                     f"pageblock_order{_pooled_text(pooled_all)}. {CI_NOTE}"),
            data=data, draw_fn=F.draw_lines,
            options=dict(x="request_order", col="workload", hue="kind", percent=True, ylim=(-0.03, 1.05),
                         xlabel="request order (log2 of 4 KiB pages)", ylabels="success rate", sharey=True)))
    contig = sp[sp["kind"] == "contig"]
    if not contig.empty:
        data = T.success_by(probes, ["workload", "size_label", "regime", "max_order"], kinds=["contig"])
        data["range"] = data["size_label"] + " ranges"
        ranges = [f"{z} ranges" for z in T.sort_values("size_label", data["size_label"].unique().tolist())]
        # one range size: the workloads side by side; several: a row per workload, a column per size
        grid = (dict(row="workload", col="range", col_order=ranges) if len(ranges) > 1
                else dict(col="workload", title=None))
        s.blocks.append(F.FigureSpec(
            name="contig-isolation",
            title="alloc_contig_range() success by isolation regime and range size"
                  + (f" ({ranges[0].replace('ranges', 'range')}s)" if len(ranges) == 1 else ""),
            caption=("Share of naturally aligned candidate ranges that alloc_contig_range() obtained, by "
                     "isolation regime: before 5.19 the range is widened to whole max(MAX_ORDER, pageblock) "
                     "blocks and every page of them must be movable or free; since 5.19 only the pageblocks "
                     f"of the range are isolated"
                     f"{_pooled_text(T.pooled_over(contig, ['workload', 'size_label', 'isolation', 'max_order']))}. "
                     f"{_what_if_caption(T.ok_cells(df))}{CI_NOTE} {MAX_ORDER_NOTE}"),
            data=data, draw_fn=F.draw_lines,
            options=dict(x="max_order", **grid, hue="regime", percent=True,
                         ylim=(-0.03, 1.05), dodge=0.06, xlabel=F.MAX_ORDER_LABEL, ylabels="success rate",
                         sharey=True)))
        _regime_finding(data, findings)
    for kind, by, title, what in (
            ("gigantic", "label", "Gigantic pages (alloc_contig_pages()) against max_order",
             "Share of gigantic pages obtained, asked one after the other (the pages stay allocated)"),
            ("offline", "label", "Memory-block offline success by block size against max_order",
             "Share of memory blocks that could be offlined (each is put online again before the next)")):
        sub = sp[sp["kind"] == kind]
        if sub.empty:
            continue
        hue = "policy" if "policy" in sub and sub["policy"].nunique() > 1 else None
        data = T.success_by(probes, ["workload", by, "max_order"] + ([hue] if hue else []), kinds=[kind])
        data["panel"] = [f"{w} workload: {z}" for w, z in zip(data["workload"], data[by])]
        pooled = {k: v for k, v in pooled_all.items() if k != hue}
        s.blocks.append(F.FigureSpec(
            name=f"{kind}-success", title=title,
            caption=(f"{what}, mean over seeds{_pooled_text(pooled)}"
                     + (", colour: policy" if hue else "") + f". {CI_NOTE} {MAX_ORDER_NOTE}"),
            data=data, draw_fn=F.draw_lines,
            options=dict(x="max_order", col="panel", hue=hue, percent=True, ylim=(-0.03, 1.05), dodge=0.06,
                         xlabel=F.MAX_ORDER_LABEL, ylabels="success rate", sharey=True)))
    fails = T.failure_reasons(probes)
    if not fails.empty:
        s.blocks.append(F.FigureSpec(
            name="failure-reasons", title="Why contiguous allocations failed",
            caption=("Reasons met per attempt, summed over every cell of each workload. A reason counts each "
                     "range or block tried: alloc_contig_pages() may skip ranges (an unmovable page, a huge page "
                     "in the way) before it succeeds, so a probe can report more reasons than failures."),
            data=fails, draw_fn=F.draw_failures, options=dict(col="workload")))
    _success_finding(sp, findings)
    rows = []
    summ = T.success_by(probes, ["workload", "label", "max_order"])
    for (wl, lb), g in summ.groupby(["workload", "label"], sort=True):
        lo_o, hi_o = g["max_order"].min(), g["max_order"].max()
        a, b = g[g["max_order"] == lo_o].iloc[0], g[g["max_order"] == hi_o].iloc[0]
        rows.append([str(wl), lb, pct(a["mean"]), pct(b["mean"]), f"{int(lo_o)} → {int(hi_o)}"])
    s.blocks.append(Table(["workload", "probe", "success at smallest max_order", "at largest", "max_order"],
                          rows, caption="Mean success rate over seeds and every other parameter.",
                          align="llrrr"))
    return s


def _what_if_caption(cells: pd.DataFrame) -> str:
    pairs = T.what_if_pairs(cells)
    if not pairs:
        return ""
    return ("What-ifs: " + ", ".join(f"{T.format_value('regime', iso)} with policy {pol}" for iso, pol, _ in pairs)
            + " (no kernel had that pair; see Data). ")


def _regime_finding(data: pd.DataFrame, findings: list[str]) -> None:
    if data["regime"].nunique() < 2:
        return
    top = data["max_order"].max()
    at = data[data["max_order"] == top]
    best = None
    for (wl, size), g in at.groupby(["workload", "size_label"], sort=True):
        if set(g["regime"]) >= {"pageblock", "maxorder"}:
            p = g[g["regime"] == "pageblock"].iloc[0]
            m = g[g["regime"] == "maxorder"].iloc[0]
            gap = p["mean"] - m["mean"]
            if best is None or gap > best[0]:
                best = (gap, wl, size, p, m)
    if best and best[0] > 0:
        gap, wl, size, p, m = best
        findings.append(
            f"alloc_contig_range() of {size} ranges ({wl} workload) at max_order {int(top)}: {pct(p['mean'])} "
            f"succeed with pageblock isolation (5.19+) against {pct(m['mean'])} with MAX_ORDER-block isolation "
            f"(before 5.19) ({ci_text(p['lo'], p['hi'], pct)} and {ci_text(m['lo'], m['hi'], pct)}).")


def _success_finding(sp: pd.DataFrame, findings: list[str]) -> None:
    if sp["max_order"].nunique() < 2:
        return
    summ = T.summarise(sp, ["workload", "label", "max_order"], "success_rate", bounds=(0.0, 1.0))
    best = None
    for (wl, lb), g in summ.groupby(["workload", "label"], sort=True):
        a = g[g["max_order"] == g["max_order"].min()].iloc[0]
        b = g[g["max_order"] == g["max_order"].max()].iloc[0]
        d = abs(b["mean"] - a["mean"])
        if best is None or d > best[0]:
            best = (d, wl, lb, a, b)
    if best and best[0] > 0.01:
        d, wl, lb, a, b = best
        verb = "falls" if b["mean"] < a["mean"] else "rises"
        findings.append(f"The largest effect of max_order on a probe: {lb} ({wl} workload) {verb} from "
                        f"{pct(a['mean'])} at max_order {int(a['max_order'])} to {pct(b['mean'])} at max_order "
                        f"{int(b['max_order'])} ({ci_text(b['lo'], b['hi'], pct)}).")


def hotplug_section(df: pd.DataFrame, findings: list[str]) -> Section | None:
    """The thread's third question: offlining and onlining memory blocks once max_order exceeds
    the block's order (offline probes with hazards)."""
    probes = T.probe_results(df)
    off = probes[probes["kind"] == "offline"] if "kind" in probes else probes
    vmem = probes[probes["kind"] == "virtio-mem"] if "kind" in probes else probes
    has_offline = not off.empty and "hazard_offline_lost_pages" in off
    if not has_offline and vmem.empty:
        return None
    s = Section("Memory hotplug at large max_order")
    if has_offline:
        _offline_part(s, off, findings)
    if not vmem.empty:
        _virtio_mem_part(s, vmem, findings)
    return s


def _offline_part(s: Section, off: pd.DataFrame, findings: list[str]) -> None:
    """Offlining and onlining every memory block: the hazards per release."""
    s.blocks.append(
        "The thread's third question: what onlining and offlining do once a max_order block is larger "
        "than a memory block. No release builds such a kernel (include/linux/mmzone.h: #error Allocator "
        "MAX_ORDER exceeds SECTION_SIZE, and a memory block is at least a section); these are what each "
        "release's code would do without that limit (kernels/MODEL.md, Isolation). Before 5.19 isolation "
        "does not split a free buddy that straddles a block: a block starting on one of its tails never "
        "offlines (offline_pages() retries until a signal: offline hangs), and a block holding its head "
        "offlines and takes the whole buddy, losing the pages beyond the block. From 5.10 onlining frees "
        "chunks of min(max_order, __ffs(pfn)) pages with no clamp at the block's end, so a block at a "
        "pfn aligned beyond its size frees pages of other blocks (in use ones a second time). The probe "
        "offlines every block in turn and onlines each success again.")
    keys = [k for k in ("policy", "isolation", "movable_fraction") if k in off and off[k].nunique() > 1]
    # include/linux/mmzone.h: #error when MAX_PAGE_ORDER + PAGE_SHIFT > SECTION_SIZE_BITS
    sections = sorted(int(v) for v in pd.to_numeric(off.get("section_bits", pd.Series([27])), errors="coerce")
                      .dropna().unique())
    s.blocks.append("With SECTION_SIZE_BITS " + ", ".join(str(b) for b in sections) + " (the sweep's "
                    "section_bits), a kernel builds up to max_order "
                    + ", ".join(str(b - T.PAGE_SHIFT) for b in sections) + "; the rows above that are "
                    "what-ifs of the releases' code.")
    off = off.assign(hangs=off.get("fail_offline_hangs", 0) / off["asked"].where(off["asked"] > 0),
                     lost=off["hazard_offline_lost_pages"] * 4096 / 2 ** 30,
                     beyond=off["hazard_online_beyond_block_pages"].fillna(0) * 4096 / 2 ** 30)
    g = off.groupby(keys + ["size_label", "max_order"], sort=True)[["success_rate", "hangs", "lost", "beyond"]]
    m = g.mean().reset_index()
    rows = [[*(T.format_value(k, r[k]) for k in keys), str(r["size_label"]), str(int(r["max_order"])),
             pct(r["success_rate"]), pct(r["hangs"]), f"{r['lost']:.2f}", f"{r['beyond']:.2f}"]
            for _, r in m.iterrows()]
    s.blocks.append(Table(keys + ["block", "max_order", "offlined", "offline hangs",
                                  "lost by offlining (GiB)", "freed beyond the blocks by onlining (GiB)"],
                          rows, caption="Mean over seeds and every other parameter, per pass of the probe "
                                        "over every block.",
                          align="l" * (len(keys) + 1) + "rrrrr"))
    for size, sub in m.groupby("size_label", sort=True):
        hazard = sub[(sub["lost"] > 0) | (sub["beyond"] > 0) | (sub["hangs"] > 0)]
        if hazard.empty:
            findings.append(f"Memory blocks of {size}: no hazard up to max_order {int(sub['max_order'].max())}.")
            continue
        first = int(hazard["max_order"].min())
        text = f"Memory blocks of {size}: hazards from max_order {first} on."
        for what, col in (("offlining", "hangs"), ("onlining", "beyond")):
            w = sub.sort_values([col, "lost"], ascending=False).iloc[0]
            if w[col] <= 0:
                continue
            where = ", ".join(T.format_value(k, w[k]) for k in keys)
            text += (f" Worst for {what} at max_order {int(w['max_order'])}{' (' + where + ')' if where else ''}: "
                     + (f"{pct(w['success_rate'])} of the blocks offline, {pct(w['hangs'])} would hang and "
                        f"{w['lost']:.2f} GiB are lost." if what == "offlining" else
                        f"{w['beyond']:.2f} GiB freed beyond the blocks per pass."))
        findings.append(text)


def _virtio_mem_part(s: Section, vmem: pd.DataFrame, findings: list[str]) -> None:
    """virtio-mem unplug: the share of the requested size the driver gave back, by max_order and
    isolation regime (the driver's subblock follows it), per zone the device was onlined to."""
    vmem = vmem.assign(zone=np.where(pd.to_numeric(vmem.get("movable_fraction", 0.0)) > 0,
                                     "ZONE_MOVABLE", "ZONE_NORMAL"))
    s.blocks.append(
        "virtio-mem: the host asks for memory back and the driver unplugs what it can "
        "(drivers/virtio/virtio_mem.c; kernels/MODEL.md, virtio-mem). Its subblock is a pageblock from "
        "5.19 and at least MAX_ORDER_NR_PAGES before (the maxorder regime), and once a subblock is not "
        "smaller than a memory block the driver works in whole big blocks (Big Block Mode), where one "
        "unmovable page keeps a whole block plugged. Each subblock is taken with alloc_contig_range(), "
        "which before 5.19 isolates whole max-order blocks around it.")
    keys = [k for k in ("workload",) if k in vmem and vmem[k].nunique() > 1]
    g = vmem.groupby(keys + ["zone", "regime", "max_order"], sort=True)
    m = g.agg(success_rate=("success_rate", "mean"), obtained=("obtained", "mean"),
              asked=("asked", "mean")).reset_index()
    rows = [[*(T.format_value(k, r[k]) for k in keys), r["zone"], r["regime"], str(int(r["max_order"])),
             pct(r["success_rate"]), f"{r['obtained'] / 2 ** 30:.3f}", f"{r['asked'] / 2 ** 30:.3f}"]
            for _, r in m.iterrows()]
    s.blocks.append(Table(keys + ["zone", "isolation", "max_order", "unplugged", "GiB given back",
                                  "GiB asked"], rows,
                          caption="virtio-mem unplug, mean over seeds and every other parameter.",
                          align="l" * (len(keys) + 2) + "rrrr"))
    data = T.success_by(vmem, keys + ["zone", "regime", "max_order"], kinds=["virtio-mem"])
    if data["max_order"].nunique() > 1:
        s.blocks.append(F.FigureSpec(
            name="virtio-mem-unplug",
            title="virtio-mem: share of the requested memory unplugged against max_order",
            caption=("Mean share of the requested size the driver gave back, per isolation regime "
                     "(maxorder: the driver and alloc_contig_range() before 5.19), one panel per zone "
                     f"the device's memory was onlined to. {CI_NOTE}"),
            data=data, draw_fn=F.draw_lines,
            options=dict(x="max_order", col="zone", hue="regime", xlabel="max_order",
                         row=keys[0] if keys else None, percent=True, ylim=(-0.03, 1.05),
                         ylabels="unplugged", sharey=True)))
    for zone, sub in m.groupby("zone", sort=True):
        text = f"virtio-mem in {zone}:"
        parts = []
        for regime, r in sub.groupby("regime", sort=True):
            worst = r.sort_values(["success_rate", "max_order"]).iloc[0]
            if worst["success_rate"] >= 1:
                parts.append(f" with {regime} isolation all of it at every max_order")
                continue
            where = ", ".join(T.format_value(k, worst[k]) for k in keys)
            parts.append(f" with {regime} isolation the lowest is {pct(worst['success_rate'])} at max_order "
                         f"{int(worst['max_order'])}{' (' + where + ')' if where else ''}")
        findings.append(text + ";".join(parts) + ".")


# -- pageblock mix and fragmentation ----------------------------------------------------------------------

def mix_section(df: pd.DataFrame, findings: list[str]) -> Section:
    s = Section("Pageblock mix and fragmentation")
    s.blocks.append(
        "How far allocations of other migratetypes spread into Movable pageblocks (fallback claims and "
        "steals, pageblocks re-typed, mixed pageblocks), and how fragmented free memory is at the end "
        "(unusable_index and extfrag_index of mm/vmstat.c at pageblock_order, the order of a THP).")
    d = T.derive(df)
    if d.empty:
        s.blocks.append("No finished cells.")
        return s
    present = T.present_metrics(d, T.MIX_METRICS)
    absent = [m for m in T.MIX_METRICS if m not in present and m.name in d]
    if absent:
        words = []
        for m in absent:
            v = pd.to_numeric(d[m.name], errors="coerce")
            if v.notna().any():
                words.append(f"{m.label}: 0 in every cell")
            elif m.name == "extfrag_pb":
                words.append(f"{m.label}: -1000 (an allocation of that order would succeed) in every cell")
            else:
                words.append(f"{m.label}: not in these results")
        note = ("Not drawn, because they are the same everywhere: " + "; ".join(words) + ".")
        if "workload" in d and set(d["workload"]) == {"smallpages"}:
            note += (" The smallpages workload frees everything it allocated at the end, so the final "
                     "free memory is as unfragmented as at boot; the pageblock types it changed stay changed.")
        s.blocks.append(note)
    if not present or "max_order" not in d or d["max_order"].nunique() < 2:
        if present:
            s.blocks.append("A single max_order: no figures against max_order.")
        return s
    mix = T.mix_frame(df)
    mix = mix[mix["metric"].isin([m.name for m in present])]
    panel_keys = [k for k in ("workload", "migratetype") if k in mix and mix[k].nunique() > 1]
    style = "pageblock_order" if "pageblock_order" in mix and mix["pageblock_order"].nunique() > 1 else None
    by = panel_keys + ([style] if style else []) + (["policy"] if "policy" in mix else [])
    summ = T.mix_summary(mix, by)
    if panel_keys:
        summ["panel"] = [", ".join(T.format_value(k, v) for k, v in zip(panel_keys, r))
                         for r in summ[panel_keys].itertuples(index=False)]
    else:
        summ["panel"] = ""
    pooled = T.pooled_over(mix, by + ["max_order", "metric"])
    units = {m.name: m.unit for m in present}
    s.blocks.append(F.FigureSpec(
        name="pageblock-mix",
        title="Pageblock mix, fallbacks and fragmentation against max_order",
        caption=("One row per measure, mean over seeds" + _pooled_text(pooled) + ". Colour: policy"
                 + ("; line style: pageblock_order" if style else "") + ". Pageblocks no longer "
                 "Movable: at boot every pageblock is Movable; a fallback that claims a block (or a whole "
                 "buddy of several pageblocks) re-types it"
                 + ("; with nomobility every pageblock is Unmovable from boot" if "policy" in summ and
                    "nomobility" in set(summ["policy"]) else "")
                 + ". Indices are read at order pageblock_order. "
                 f"{CI_NOTE} {MAX_ORDER_NOTE}"),
        data=summ, draw_fn=F.draw_lines,
        options=dict(x="max_order", row="metric", col="panel", hue="policy" if "policy" in summ else None,
                     style=style, dodge=0.06, xlabel=F.MAX_ORDER_LABEL, ylabels=units,
                     row_titles={m.name: m.label for m in present})))
    _mix_finding(summ, present, panel_keys + ([style] if style else []), findings)
    return s


def _mix_finding(summ: pd.DataFrame, present, panel_keys: list[str], findings: list[str]) -> None:
    """One sentence per measure: the configuration where max_order changes it most."""
    keys = panel_keys + (["policy"] if "policy" in summ else [])
    for m in present:
        sub = summ[summ["metric"] == m.name]
        best = None
        for cfg, g in (sub.groupby(keys, sort=True) if keys else [((), sub)]):
            cfg = cfg if isinstance(cfg, tuple) else (cfg,)
            if m.name == "not_movable_pct" and "nomobility" in cfg:
                continue  # every pageblock is Unmovable by design
            a = g[g["max_order"] == g["max_order"].min()].iloc[0]
            b = g[g["max_order"] == g["max_order"].max()].iloc[0]
            if m.unit.startswith("%"):
                d = abs(b["mean"] - a["mean"]) / 100.0
            else:
                d = abs(b["mean"] - a["mean"]) / max(abs(a["mean"]), abs(b["mean"]), 1e-12)
            if best is None or d > best[0]:
                best = (d, dict(zip(keys, cfg)), a, b)
        if best is None or best[0] <= 0.05:
            continue
        d, cfg, a, b = best
        where = ", ".join(T.format_value(k, v) for k, v in cfg.items())
        if m.unit.startswith("%"):
            fmt = lambda x: f"{x:.1f}%"  # noqa: E731
            per = ""
        else:
            fmt, per = num, " " + m.unit
        findings.append(f"{m.label[0].upper() + m.label[1:]} ({where}): {fmt(a['mean'])}{per} at max_order "
                        f"{int(a['max_order'])}, {fmt(b['mean'])} at max_order {int(b['max_order'])} "
                        f"({ci_text(b['lo'], b['hi'], fmt)}).")


# -- zone maps ---------------------------------------------------------------------------------------------

ZONE_MAP_CAPTION = (
    "One cell per pageblock, in pfn order left to right and top to bottom, coloured by its migratetype, "
    "lighter the more of its pages are free (the palest: all free); black: holes and reserved pages. The "
    "state the workload leaves, before the probes run, as farm validate --report draws the kernel's zone.")


def _map_config(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells of one configuration besides max_order and seed: per parameter, its default where
    the cells have it, else its first value in reading order."""
    from farm.cell.params import PARAMS
    for name in T.param_columns(cells):
        if name in ("max_order", "seed", "workload") or cells[name].nunique(dropna=False) < 2:
            continue
        values = T.sort_values(name, cells[name].dropna().unique().tolist())
        default = PARAMS[name].default if name in PARAMS else None
        pick = default if default in values else values[0]
        cells = cells[cells[name] == pick]
    return cells


def _param_text(name: str, value: Any) -> str:
    text = T.format_value(name, value)
    return text if name == "workload" or name.split("_")[0] in text else f"{name} {text}"


def zone_map_section(df: pd.DataFrame) -> Section | None:
    """Per workload, the zone a cell ends with at the smallest and the largest max_order (the
    maps sweep cells carry in their results); None when the results hold no maps."""
    if "zone_map_blocks" not in df:
        return None
    ok = T.ok_cells(df)
    ok = ok[ok["zone_map_blocks"].notna()]
    if ok.empty or "max_order" not in ok:
        return None
    from farm.real.zonemap import decode_zone_map
    s = Section("The zone at the end of the workload")
    s.blocks.append("What the pageblock mix looks like in memory: one cell of each workload at the smallest "
                    "and the largest max_order, the other parameters at their defaults where the sweep has "
                    "them, and the first seed.")
    workloads = T.sort_values("workload", ok["workload"].unique().tolist()) if "workload" in ok else [None]
    for wl in workloads:
        cells = _map_config(ok if wl is None else ok[ok["workload"] == wl])
        cells = cells[cells["seed"] == cells["seed"].min()] if "seed" in cells else cells
        orders = sorted({int(cells["max_order"].min()), int(cells["max_order"].max())})
        frames, shown = [], []
        for mo in orders:
            row = cells[cells["max_order"] == mo].iloc[0]
            m = decode_zone_map(int(row["zone_map_first_block"]), row["zone_map_blocks"])
            frame = pd.DataFrame(m)
            frame.insert(0, "side", f"max_order {mo}")
            frames.append(frame)
            shown = [_param_text(k, row[k]) for k in T.param_columns(cells)
                     if k not in ("max_order", "probe") and pd.notna(row[k])
                     and (k in ("workload", "seed") or ok[k].nunique() > 1)]
        name = "zone-map" + (f"-{_slug(wl)}" if wl is not None else "")
        s.blocks.append(F.FigureSpec(
            name=name,
            title=(f"{wl}: " if wl is not None else "") + "the zone at the end of the workload, max_order "
                  + " and ".join(str(o) for o in orders),
            caption=f"Cell: {', '.join(shown)}. {ZONE_MAP_CAPTION}",
            data=pd.concat(frames, ignore_index=True), draw_fn=F.draw_zone_maps))
    return s


# -- the whole report --------------------------------------------------------------------------------------

def build_report(df: pd.DataFrame, source: str, manifest: dict | None = None) -> Document:
    """The report of one results folder (`source` names it in the text)."""
    names = T.sort_values("sweep", df["sweep"].dropna().unique().tolist()) if "sweep" in df else []
    doc = Document(f"buddyfarm report: {', '.join(names) or source}")
    findings: list[str] = []
    data = data_section(df, source, manifest)
    ok = T.ok_cells(df)
    sections = [data]
    if ok.empty:
        data.blocks.append("No cell finished, so there is nothing to report.")
    else:
        sections += [slowdown_section(df, findings), success_section(df, findings), mix_section(df, findings)]
        hotplug = hotplug_section(df, findings)
        if hotplug is not None:
            sections.append(hotplug)
        maps = zone_map_section(df)
        if maps is not None:
            sections.append(maps)
    summary = Section("Findings", [Bullets(findings)] if findings else
                      ["Nothing stands out: no measure changes with max_order in these results."])
    notes = Section("How to read this report", [Bullets([
        MAX_ORDER_NOTE,
        "Confidence intervals: 95%, Student t over seeds (a cell is one configuration and one seed); where a "
        "line averages several configurations, they are averaged per seed first.",
        f"Ratios are paired: each cell is divided by the cell of the same configuration and seed at max_order "
        f"{T.BASE_MAX_ORDER} (or the smallest max_order that configuration has).",
        "Time per operation is the CPU time of the workload loop in a worker sharing the machine with other "
        "workers (time spent waiting for a core left out): the least of the cell's timing repeats (the "
        "workload run again on a node built afresh, with the same counters); normalised, that time divided "
        "by the time per operation of a fixed calibration loop timed in the same task (results made before "
        "these measures hold the wall-clock time of a single run, and no normalised time). A time ratio is "
        "stated as a difference only when its 95% CI lies beyond the measured noise (how much the repeats "
        "of one cell, and the seeds of one configuration, differ); compare step counts first. `farm bench` "
        "measures time alone.",
        "Success rates are the share of a probe's requests that succeeded; probes run on the state the "
        "workload leaves behind, in the order the sweep lists them.",
    ])])
    doc.sections = [sections[0], summary] + sections[1:] + [notes]
    return doc
