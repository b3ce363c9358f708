"""Reports: statistics, tidy frames, figure selection, comparison tables, golden Markdown, files.

Frames are built here by hand (a few cells each), so every expected number can be worked out on
paper; the golden report is pinned in tests/golden/ (refresh on purpose: python -m reports.golden).
"""

import math

import pandas as pd
import pytest
from matplotlib.figure import Figure

import reports
from reports import compare as C
from reports import frames as T
from reports import render, stats
from reports.golden import GOLDEN_DIR, MANIFEST, golden_compare, golden_frame, golden_markdown
from reports.report import build_report

# Student t 0.975 quantiles from printed tables (degrees of freedom -> t)
T_TABLE = {1: 12.706204736174707, 2: 4.302652729911275, 4: 2.7764451051977987,
           9: 2.2621571627409915, 29: 2.045229642132703}
T2 = T_TABLE[2]


# -- statistics ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("df,expected", sorted(T_TABLE.items()))
def test_t_quantile_matches_the_tables(df, expected):
    assert stats.t_quantile(0.95, df) == pytest.approx(expected, rel=1e-9)


def test_mean_ci_by_hand():
    est = stats.mean_ci([10, 12, 14])       # mean 12, s = 2, half width t(0.975, 2) * 2 / sqrt(3)
    assert (est.mean, est.sd, est.n) == (12.0, 2.0, 3)
    assert est.lo == pytest.approx(12 - T2 * 2 / math.sqrt(3)) == pytest.approx(7.031724576312494)
    assert est.hi == pytest.approx(16.968275423687505)
    one = stats.mean_ci([5.0, float("nan")])
    assert one.mean == 5.0 and one.n == 1 and math.isnan(one.lo) and math.isnan(one.hi)
    assert stats.mean_ci([]).n == 0


def test_change_is_positive_when_better():
    assert stats.change_pct(12, 21, higher_is_better=False) == pytest.approx(-75.0)   # a cost went up
    assert stats.change_pct(12, 9, higher_is_better=False) == pytest.approx(25.0)
    assert stats.change_pct(0.5, 0.75, higher_is_better=True) == pytest.approx(50.0)  # a rate went up
    assert stats.change_pct(0.5, 0.25, higher_is_better=True) == pytest.approx(-50.0)
    assert math.isnan(stats.change_pct(0, 3, higher_is_better=False))


def test_significance_is_non_overlapping_intervals():
    a = stats.mean_ci([10, 12, 14])         # [7.03, 16.97]
    b = stats.mean_ci([20, 21, 22])         # 21 +- t * 1 / sqrt(3) = [18.52, 23.48]
    c = stats.mean_ci([13, 15, 17])         # [10.03, 19.97], overlaps a
    assert b.lo == pytest.approx(21 - T2 / math.sqrt(3)) == pytest.approx(18.515862288156246)
    assert stats.significant(a, b) and stats.significant(b, a)
    assert not stats.significant(a, c) and not stats.significant(c, a)
    assert not stats.significant(stats.mean_ci([1.0]), stats.mean_ci([9.0, 9.1]))   # one seed: no CI
    assert stats.significant(stats.mean_ci([0.5] * 3), stats.mean_ci([0.75] * 3))   # no spread at all


def test_gmean():
    assert stats.gmean([12, 3]) == pytest.approx(6.0)
    assert stats.gmean([21, 12]) == pytest.approx(math.sqrt(252))
    assert stats.gmean([4, 0, float("nan")]) == pytest.approx(4.0)
    assert math.isnan(stats.gmean([0]))


# -- small frames -----------------------------------------------------------------------------------

def cell(seed, max_order=10, policy="v6.15", **over):
    """One ok cell with the columns the reports read; metric values per 1000 operations."""
    row = {"cell_id": f"{policy}-{max_order}-{seed}-{len(over)}", "sweep": "t", "model_version": "1",
           "status": "ok", "error": None, "memory": "64M", "max_order": max_order, "pageblock_order": 9,
           "policy": policy, "pcp": False, "isolation": "pageblock", "workload": "smallpages",
           "order_mix": "0=1", "migratetype": "movable", "seed": seed, "probe": "",
           "alloc_ops": 1000, "free_ops": 1000, "split_steps": 400, "merge_steps": 400,
           "orders_scanned": 1000, "timing_ns_per_op": 100.0}
    row.update(over)
    return row


def frame(rows):
    return pd.DataFrame(rows)


# -- comparison statistics ---------------------------------------------------------------------------

def comparison_frame():
    """Two policies x two max_orders x three seeds. Per 1000 operations:
    split steps  v6.1 at 10: 10, 12, 14 (mean 12)   v6.15 at 10: 20, 21, 22 (mean 21)
                 v6.1 at 12:  2,  3,  4 (mean 3)    v6.15 at 12: 11, 12, 13 (mean 12)
    merge steps  v6.1: 10, 12, 14 (mean 12)         v6.15: 13, 15, 17 (mean 15)   (both orders)
    huge page success  v6.1: 0.5 each               v6.15: 0.75 each"""
    split = {("v6.1", 10): (10, 12, 14), ("v6.15", 10): (20, 21, 22),
             ("v6.1", 12): (2, 3, 4), ("v6.15", 12): (11, 12, 13)}
    merge = {"v6.1": (10, 12, 14), "v6.15": (13, 15, 17)}
    rows = []
    for (policy, mo), values in split.items():
        for seed, v in enumerate(values, 1):
            ok = 2 if policy == "v6.1" else 3
            rows.append(cell(seed, mo, policy, split_steps=v * 1000, merge_steps=merge[policy][seed - 1] * 1000,
                             probe="hugepages:order=9,count=4", probe0_hugepages_params_order=9,
                             probe0_hugepages_params_count=4, probe0_hugepages_asked=4,
                             probe0_hugepages_obtained=ok, probe0_hugepages_success_rate=ok / 4))
    return frame(rows)


def test_comparison_rows_by_hand():
    base, other = C.split_axis(comparison_frame(), "policy=v6.1,v6.15", "src")
    c = C.compare(base, other, exclude=["policy"])
    rows = c.rows.set_index(["metric", "config"])
    r = rows.loc[("split_per_alloc", "max_order 10")]
    assert (r["base_mean"], r["other_mean"], r["base_n"], r["other_n"]) == (12, 21, 3, 3)
    assert r["base_lo"] == pytest.approx(7.031724576312494)
    assert r["other_lo"] == pytest.approx(18.515862288156246)
    assert r["change"] == pytest.approx(-75.0)            # (12 - 21) / 12: a cost went up
    assert r["significant"]                              # 16.97 < 18.52
    m = rows.loc[("merge_per_free", "max_order 10")]
    assert m["change"] == pytest.approx(-25.0)            # (12 - 15) / 12
    assert not m["significant"]                          # [7.03, 16.97] and [10.03, 19.97] overlap
    s = rows.loc[("success: hugepages order 9", "max_order 12")]
    assert s["change"] == pytest.approx(50.0) and s["significant"]   # 0.5 -> 0.75, higher is better
    g = c.gmeans.set_index("metric").loc["split_per_alloc"]
    assert g["base_gmean"] == pytest.approx(6.0)          # sqrt(12 * 3)
    assert g["other_gmean"] == pytest.approx(math.sqrt(252))       # sqrt(21 * 12)
    assert g["change"] == pytest.approx(-164.57513110645908)       # (6 - 15.87) / 6


def test_comparison_text_table_marks_significance():
    base, other = C.split_axis(comparison_frame(), "policy=v6.1,v6.15", "src")
    table = C.text_table(C.compare(base, other, exclude=["policy"]))
    lines = table.splitlines()
    assert "policy=v6.1" in lines[0] and "policy=v6.15" in lines[0]
    split = lines[lines.index("split steps per allocation (steps, lower is better)") + 1]
    assert split.split() == ["Amean", "max_order", "10", "12", "(", "0.00%)", "21", "*", "-75.00%*"]
    merge = lines[lines.index("merge steps per free (steps, lower is better)") + 1]
    assert merge.endswith("15 ( -25.00%)")
    assert any(x.startswith("Gmean") and x.endswith("(-164.58%)") for x in lines)
    success = lines[lines.index("success rate, hugepages order 9 (share, higher is better)") + 2]
    assert success.endswith("0.7500 *  50.00%*")


def test_axis_errors_are_one_line():
    df = comparison_frame()
    with pytest.raises(C.CompareError, match="NAME=BASELINE,OTHER"):
        C.parse_axis("policy=v6.1")
    with pytest.raises(C.CompareError, match=r"no cells with policy = v5.4 \(values: v6.1, v6.15\)"):
        C.split_axis(df, "policy=v5.4,v6.15", "src")
    with pytest.raises(C.CompareError, match="not a parameter"):
        C.split_axis(df, "colour=red,blue", "src")


def test_two_sets_matched_by_parameters_and_versions_named():
    df = comparison_frame()
    a = df[df["policy"] == "v6.1"].copy()
    b = df[df["policy"] == "v6.15"].copy()
    b["model_version"] = "2"
    c = C.compare(C.Side("A", a, "a"), C.Side("B", b, "b"))
    assert "policy" not in c.key and c.notes["differs"] == {"policy": ("v6.1", "v6.15")}
    assert (c.matched, c.only_baseline, c.only_other) == (2, 0, 0)
    md = render.to_markdown(C.build_document(c, C.text_table(c), "t"), {"largest-changes": "x.png"})
    assert "made by different model versions (A: 1; B: 2)" in md
    assert "`policy` v6.1 → v6.15" in md


# -- tidy frames ----------------------------------------------------------------------------------------

def test_slowdown_ratios_pair_by_seed_and_fall_back_to_the_smallest_max_order():
    rows = [cell(s, mo, split_steps=v) for s, mo, v in
            ((1, 10, 400), (2, 10, 500), (1, 12, 440), (2, 12, 600))]
    rows += [cell(s, mo, pageblock_order=11, split_steps=v) for s, mo, v in
             ((1, 12, 300), (2, 12, 300), (1, 14, 330), (2, 14, 360))]
    r = T.slowdown_ratios(frame(rows))
    split = r[r["metric"] == "split_per_alloc"].set_index(["pageblock_order", "max_order", "seed"])
    assert split.loc[(9, 12, 1), "ratio"] == pytest.approx(1.1)      # 440 / 400, same seed
    assert split.loc[(9, 12, 2), "ratio"] == pytest.approx(1.2)      # 600 / 500
    assert split.loc[(11, 14, 2), "ratio"] == pytest.approx(1.2)     # 360 / 300
    assert set(split.loc[11]["baseline_max_order"]) == {12}          # no max_order 10 cell
    assert set(split.loc[9]["baseline_max_order"]) == {10}
    s = T.slowdown_summary(r, display=["pageblock_order"]).set_index(["pageblock_order", "max_order", "metric"])
    x = s.loc[(9, 12, "split_per_alloc")]
    half = T_TABLE[1] * math.sqrt(0.005) / math.sqrt(2)                # ratios 1.1 and 1.2: s^2 = 0.005
    assert x["mean"] == pytest.approx(1.15) and x["n"] == 2
    assert x["hi"] == pytest.approx(1.15 + half) and x["lo"] == pytest.approx(1.15 - half)


def test_summarise_averages_pooled_configurations_per_seed():
    f = pd.DataFrame({"g": ["a"] * 4, "seed": [1, 1, 2, 2], "v": [1.0, 3.0, 2.0, 6.0]})
    s = T.summarise(f, ["g"], "v").iloc[0]
    est = stats.mean_ci([2.0, 4.0])                                    # per seed: (1+3)/2, (2+6)/2
    assert (s["mean"], s["n"], s["pooled"]) == (3.0, 2, 2)
    assert s["hi"] == pytest.approx(est.hi)
    # a non-negative quantity: an interval reaching below 0 is clipped there (here 3 - 12.7)
    assert s["lo"] == 0.0 and est.lo < 0
    rate = T.summarise(f.assign(v=[0.9, 0.9, 0.2, 1.0]), ["g"], "v", bounds=(0.0, 1.0)).iloc[0]
    assert rate["hi"] == 1.0


def test_parameters_that_change_no_count_are_not_configurations():
    rows = [cell(s, mo, isolation=iso, split_steps=400 + mo + s) for s in (1, 2) for mo in (10, 12)
            for iso in ("pageblock", "maxorder")]
    r = T.slowdown_ratios(frame(rows))
    assert "isolation" not in r.columns
    assert len(r[(r["metric"] == "split_per_alloc")]) == 4


def test_worst_case_frame():
    rows = [cell(s, mo, split_steps=360, max_split_steps=mo, max_merge_steps=mo - 1, max_orders_scanned=mo + 1)
            for s in (1, 2) for mo in (10, 18)]
    w = T.worst_case(T.slowdown_ratios(frame(rows))).set_index(["max_order", "metric"])
    assert w.loc[(18, "split_per_alloc"), "bound"] == 18        # order 0 from an order-18 block
    assert w.loc[(18, "scanned_per_alloc"), "bound"] == 19      # free lists 0..18
    assert w.loc[(18, "split_per_alloc"), "max_mean"] == 18
    assert w.loc[(10, "merge_per_free"), "max_mean"] == 9
    assert w.loc[(10, "split_per_alloc"), "mean"] == pytest.approx(0.36)


def test_probe_results_reads_positional_columns():
    a = cell(1, probe="contig:size=2M,attempts=8", isolation="maxorder", probe0_contig_params_size="2M",
             probe0_contig_params_attempts=8, probe0_contig_asked=8, probe0_contig_obtained=6,
             probe0_contig_success_rate=0.75, probe0_contig_fail_unmovable_in_range=2)
    b = cell(2, probe="hugepages:order=9,count=4; contig:size=8M,isolation=pageblock,attempts=4",
             probe0_hugepages_params_order=9, probe0_hugepages_asked=4, probe0_hugepages_obtained=4,
             probe0_hugepages_success_rate=1.0, probe1_contig_params_size="8M",
             probe1_contig_params_isolation="pageblock", probe1_contig_asked=4, probe1_contig_obtained=1,
             probe1_contig_success_rate=0.25, probe1_contig_fail_unmovable_in_range=3)
    p = T.probe_results(frame([a, b])).set_index(["seed", "index"])
    assert p.loc[(1, 0), "label"] == "contig 2M, maxorder isolation"    # regime from the cell
    assert p.loc[(1, 0), "regime"] == "maxorder"
    assert p.loc[(1, 0), "request_order"] == 9                         # 2 MiB = 2^9 pages
    assert p.loc[(2, 0), "kind"] == "hugepages" and p.loc[(2, 0), "spec"] == "hugepages:order=9,count=4"
    assert p.loc[(2, 1), "label"] == "contig 8M, pageblock isolation"
    assert p.loc[(2, 1), "request_order"] == 11
    assert p.loc[(2, 0), "fail_unmovable_in_range"] == 0               # a reason not met is 0
    f = T.failure_reasons(T.probe_results(frame([a, b]))).set_index("label")
    assert f.loc["contig 8M, pageblock isolation", "per_attempt"] == pytest.approx(3 / 4)


def test_success_heatmap_data():
    rows = [cell(s, mo, pageblock_order=pb, probe="hugepages:order=9,count=4", probe0_hugepages_asked=4,
                 probe0_hugepages_params_order=9, probe0_hugepages_obtained=k,
                 probe0_hugepages_success_rate=k / 4)
            for (mo, pb, s, k) in ((10, 9, 1, 4), (10, 9, 2, 2), (12, 9, 1, 1), (12, 11, 1, 0))]
    h = T.success_heatmaps(T.probe_results(frame(rows))).set_index(["max_order", "pageblock_order"])
    assert h.loc[(10, 9), "success"] == pytest.approx(0.75) and h.loc[(10, 9), "cells"] == 2
    assert h.loc[(12, 11), "success"] == 0.0
    assert (10, 11) not in h.index


def test_dependent_parameters_are_not_axes():
    rows = [cell(1, workload=w, mix=m) for w, m in (("smallpages", None), ("fragmenter", None), ("mixed", "x"))]
    info = T.provenance(frame(rows))
    assert "workload" in info["axes"] and "mix" not in info["axes"]
    assert info["dependent"] == {"mix": "workload"}


# -- time differences against the machine's noise -----------------------------------------------------

def timed_frame(top, spread=None, between=0.0, normalised=True):
    """smallpages at max_order 10 and 18, three seeds. Time per operation (normalised to the
    calibration loop, or in ns when `normalised` is False) 1 at max_order 10 and `top` at 18, both
    times (1 + between * seed), so the ratio is `top` on every seed while the seeds of one
    configuration differ by (1 + 3 between) / (1 + between); every cell's timing repeats differ
    by `spread` (None: timed once, as before the repeats)."""
    rows = []
    for seed in (1, 2, 3):
        for mo, t in ((10, 1.0), (18, top)):
            v = t * (1 + between * seed)
            over = {"split_steps": 400 + 10 * (mo - 10), "timing_ns_per_op": 40.0 * v}
            if normalised:
                over.update(timing_calib_ns=40.0, timing_ns_per_op_norm=v, timing_repeats=3)
            if spread is not None:
                over["timing_ns_per_op_spread"] = spread
            rows.append(cell(seed, mo, **over))
    return frame(rows)


def report_text(df):
    doc = build_report(df, "src")
    findings = next(s for s in doc.sections if s.title == "Findings")
    slowdown = next(s for s in doc.sections if s.title == "Allocation slowdown")
    return (render.to_markdown(render.Document("f", sections=[findings]), {}),
            render.to_markdown(render.Document("s", sections=[slowdown]), render.figure_paths(doc)))


def test_a_large_time_difference_with_little_noise_is_a_finding():
    findings, slowdown = report_text(timed_frame(2.0, spread=1.02, between=0.005))
    assert ("time per operation 2.000 times (95% CI 2.000–2.000; normalised to the calibration loop; "
            "beyond the machine's noise of 1.020 times)") in findings
    assert ("an operation takes 2.000 times the time (normalised to the calibration loop; 95% CI 2.000–2.000; "
            "1.010 → 2.020 calibration operations per operation; 40.40 → 80.80 ns per operation), beyond the "
            "machine's noise of 1.020 times") in slowdown
    assert "within the machine's noise" not in findings + slowdown
    # the split steps are stated as before
    assert "does 1.200 times the split steps of max_order 10 on average" in findings


def test_a_small_time_difference_within_the_repeat_spread_is_not_a_finding():
    # the same 10% on every seed (a narrow CI), but one cell's repeats differ by 30%
    findings, slowdown = report_text(timed_frame(1.1, spread=1.3))
    assert "time per operation within the machine's noise (1.100 times, 95% CI 1.100–1.100;" in findings
    assert "the timing repeats of one cell differ by 1.300 times" in findings
    assert "`farm bench` measures time alone" in findings
    assert "an operation takes" not in slowdown
    assert "differs by no more than the machine's noise: 1.100 times" in slowdown
    assert "lies outside 0.769–1.300" in slowdown                     # the table's caption: 1 / 1.3


def test_a_small_time_difference_within_the_seed_spread_is_not_a_finding():
    # steady repeats, but the seeds of one configuration differ by 1.3 / 1.1 = 1.18 times
    findings, slowdown = report_text(timed_frame(1.1, spread=1.01, between=0.1))
    assert "time per operation within the machine's noise (1.100 times" in findings
    assert "the seeds of one configuration by 1.182 times" in findings
    assert "an operation takes" not in slowdown


def test_results_timed_once_are_judged_by_the_seed_spread_in_ns():
    findings, _ = report_text(timed_frame(1.5, between=0.01, normalised=False))
    assert ("time per operation 1.500 times (95% CI 1.500–1.500; beyond the machine's noise of "
            "1.020 times)") in findings                                 # 1.03 / 1.01
    findings, _ = report_text(timed_frame(1.01, between=0.01, normalised=False))
    assert "time per operation within the machine's noise (1.010 times" in findings


def test_timing_noise_factor_and_verdict():
    n = T.TimingNoise("ns_per_op_norm", within=1.2, between=1.05)
    assert n.factor == 1.2
    assert n.beyond(1.25, 1.4) and n.beyond(0.7, 0.8)              # wholly above 1.2, below 1 / 1.2
    assert not n.beyond(1.15, 1.4) and not n.beyond(0.7, 0.85)
    assert not n.beyond(float("nan"), float("nan"))                 # one seed: no CI, no finding
    none = T.TimingNoise("ns_per_op", within=float("nan"), between=float("nan"))
    assert math.isnan(none.factor) and not none.beyond(5.0, 6.0)    # noise unknown: no finding
    assert T.TimingNoise("ns_per_op", float("nan"), 1.1).factor == 1.1


# -- which figures a report holds ------------------------------------------------------------------------

def figure_names(doc):
    return [f.name for f in doc.figures()]


def test_figures_follow_the_contents():
    df = golden_frame()
    doc = build_report(df, "src")
    names = figure_names(doc)
    assert {"slowdown-amortised", "slowdown-worst", "slowdown-absolute", "success-heatmap-smallpages",
            "contig-isolation", "failure-reasons", "pageblock-mix"} <= set(names)
    heat = next(f for f in doc.figures() if f.name == "success-heatmap-smallpages")
    pd.testing.assert_frame_equal(heat.data.reset_index(drop=True), T.success_heatmaps(T.probe_results(df)))
    for f in doc.figures():
        assert f.title and f.caption and not f.data.empty
        if f.options.get("x") == "max_order" or f.name.startswith(("slowdown", "success-heatmap")):
            assert "inclusive" in f.caption
    no_probes = df[[c for c in df.columns if not c.startswith("probe")]]
    names = figure_names(build_report(no_probes, "src"))
    assert not [n for n in names if "success" in n or "contig" in n or "failure" in n]
    assert "slowdown-amortised" in names
    one_order = df[df["max_order"] == 10]
    doc = build_report(one_order, "src")
    assert not [n for n in figure_names(doc) if n.startswith("slowdown")]
    assert "a single max_order" in render.to_markdown(doc, render.figure_paths(doc))


def test_zone_maps_show_each_workload_at_the_smallest_and_largest_max_order():
    """The maps sweep cells carry: one figure per workload, the cells of the parameters' defaults
    (policy v6.15 over v6.1) and the first seed, at max_order 10 and 12, drawn from those cells'
    own maps; results without maps have no such section."""
    from farm.real.zonemap import decode_zone_map, encode_zone_map
    df = golden_frame()
    ok = df["status"] == "ok"
    maps = {}
    for i in df.index[ok]:
        r = df.loc[i]
        # a made-up map that names its cell: the policy's type and the seed/max_order as free shares
        kind = "Unmovable" if r["policy"] == "v6.15" else "Reclaimable"
        m = {"block": list(range(4)), "kind": [kind] * 4, "free": [r["seed"] / 10, r["max_order"] / 20, 0.0, 1.0],
             "hole": [False, False, False, True], "isolated": [False] * 4}
        maps[i] = encode_zone_map(m)
    df.loc[ok, "zone_map_first_block"] = [maps[i]["first_block"] for i in df.index[ok]]
    df.loc[ok, "zone_map_blocks"] = [maps[i]["blocks"] for i in df.index[ok]]
    doc = build_report(df, "src")
    specs = [f for f in doc.figures() if f.name.startswith("zone-map")]
    assert [f.name for f in specs] == ["zone-map-" + df["workload"].iloc[0]]
    data = specs[0].data
    assert list(dict.fromkeys(data["side"])) == ["max_order 10", "max_order 12"]
    for mo in (10, 12):
        sub = data[data["side"] == f"max_order {mo}"].drop(columns="side").to_dict("list")
        row = df[ok & (df["policy"] == "v6.15") & (df["seed"] == 1) & (df["max_order"] == mo)].iloc[0]
        assert sub == decode_zone_map(row["zone_map_first_block"], row["zone_map_blocks"])
    assert "policy v6.15" in specs[0].caption and "seed 1" in specs[0].caption
    assert not [f for f in build_report(golden_frame(), "src").figures() if f.name.startswith("zone-map")]


def test_slowdown_figure_receives_ratios_with_confidence_intervals():
    doc = build_report(golden_frame(), "src")
    spec = next(f for f in doc.figures() if f.name == "slowdown-amortised")
    d = spec.data.set_index(["policy", "max_order", "metric"])
    # v6.1 split steps per 1000 allocations (reports/golden.py: 400 + 10 (max_order - 10) + seed):
    # 401, 402, 403 at max_order 10; 421, 422, 423 at 12
    ratios = [421 / 401, 422 / 402, 423 / 403]
    est = stats.mean_ci(ratios)
    row = d.loc[("v6.1", 12, "split_per_alloc")]
    assert row["mean"] == pytest.approx(est.mean) and row["hi"] == pytest.approx(est.hi)
    assert d.loc[("v6.1", 10, "split_per_alloc"), "mean"] == 1.0
    assert set(spec.data["metric"]) == {"split_per_alloc", "merge_per_free", "scanned_per_alloc", "ns_per_op",
                                        "ns_per_op_norm"}


def test_every_figure_draws():
    for spec in build_report(golden_frame(), "src").figures():
        fig = spec.draw()
        assert isinstance(fig, Figure) and fig.axes


def test_report_names_model_versions_and_errors():
    df = golden_frame()
    df.loc[df.index[:3], "model_version"] = "0.0-older"
    doc = build_report(df, "src", MANIFEST)
    md = render.to_markdown(doc, render.figure_paths(doc))
    assert "made by 2 different model versions (0.0-golden, 0.0-older)" in md
    assert "| SimulationError: check_zone failed (made up for the golden file) | 1 |" in md


# -- golden files -----------------------------------------------------------------------------------------

REFRESH = "refresh on purpose with: python -m reports.golden"


def test_golden_markdown():
    assert golden_markdown() == (GOLDEN_DIR / "report.md").read_text(), REFRESH


def test_golden_comparison_table():
    assert golden_compare() == (GOLDEN_DIR / "compare.txt").read_text(), REFRESH


# -- files from a results folder ---------------------------------------------------------------------------

def write_store(path, df):
    from farm.sweep.store import Store
    store = Store(path)
    store.create()
    rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in df.to_dict("records")]
    params = [c for c in T.PARAM_NAMES if c in df.columns]
    store.append(rows, params, "test")
    return path


def test_make_report_and_comparisons_from_folders(tmp_path):
    df = golden_frame()
    a = write_store(tmp_path / "a", df)
    html, md = reports.make_report(str(a))
    assert html == str(a / "report" / "report.html")
    text = open(html).read()
    n = len(build_report(df, "x").figures())
    assert text.count('src="data:image/png;base64,') == n and "http" not in text.split("<body>")[0]
    links = [line for line in open(md).read().splitlines() if line.startswith("![")]
    assert len(links) == n
    for line in links:
        assert (a / "report" / line.split("](")[1].rstrip(")")).stat().st_size > 1000
    table, html2, md2 = reports.make_comparison(str(a), axis="policy=v6.1,v6.15")
    assert "Amean" in table and "Gmean" in table and html2.endswith("compare-policy-v6.1-v6.15/compare.html")
    b_df = df.copy()
    b_df["model_version"] = "9.9"
    b = write_store(tmp_path / "b", b_df)
    table, html3, md3 = reports.make_comparison(str(a), str(b), out_dir=str(tmp_path / "cmp"))
    assert "different model versions" in open(md3).read()
    assert "(   0.00%)" in table
    with pytest.raises(reports.ReportError, match="one of them"):
        reports.make_comparison(str(a), str(b), axis="policy=v6.1,v6.15")
    with pytest.raises(reports.ReportError, match="not a results folder"):
        reports.make_report(str(tmp_path / "nothing"))
    with pytest.raises(reports.ReportError, match="no cells with policy = v9"):
        reports.make_comparison(str(a), axis="policy=v6.1,v9")


def test_reports_of_odd_result_sets():
    df = golden_frame()
    one_seed = build_report(df[df["seed"] == 1], "src")
    md = render.to_markdown(one_seed, render.figure_paths(one_seed))
    assert "no CI: one seed" in md
    for spec in one_seed.figures():
        assert spec.draw().axes
    errors = df.assign(status="error", error="boom")
    doc = build_report(errors, "src")
    assert not doc.figures()
    assert "No cell finished" in render.to_markdown(doc, {})


def test_what_ifs_are_the_pairs_no_kernel_had():
    """maxorder isolation (before 5.19) belongs with v5.4, pageblock isolation (5.19+) with every
    later policy; any other pair is a what-if, named in the data section and the caption of the
    isolation figure."""
    cells = pd.DataFrame({"isolation": ["maxorder", "maxorder", "pageblock", "pageblock", "maxorder"],
                          "policy": ["v5.4", "v6.15", "v5.4", "v6.17", "v6.15"]})
    assert T.what_if_pairs(cells) == [("maxorder", "v6.15", 2), ("pageblock", "v5.4", 1)]
    assert T.what_if_pairs(cells.drop(columns="isolation")) == []
    df = golden_frame()
    doc = build_report(df, "src")
    assert "What-ifs" not in render.to_markdown(doc, render.figure_paths(doc))
    df["isolation"] = "maxorder"
    doc = build_report(df, "src")
    md = render.to_markdown(doc, render.figure_paths(doc))
    assert "What-ifs: " in md and "and policy v6.15" in md and "and policy v6.1" in md


def test_every_policy_has_its_own_colour():
    """Each policy the model knows keeps one colour in every figure, distinct from the others."""
    from kernels.constants import POLICIES
    from reports.figures import colours
    assert set(POLICIES) == set(T.POLICY_ORDER)
    got = colours("policy", list(POLICIES))
    assert len({tuple(c) for c in got.values()}) == len(POLICIES)
    assert colours("policy", ["nomobility"])["nomobility"] == got["nomobility"]


def test_the_hotplug_section_states_the_hazards_per_block_size():
    """Offline probes with hazards: a table row per configuration and max_order, and a finding per
    block size naming the worst offlining and onlining. By hand: 128 MiB blocks (32 of them in
    4 GiB); at max_order 16 with v5.4 14 offline and 16 hang, 262144 pages (1 GiB) lost; with
    v6.1 30 offline, 786432 pages (3 GiB) freed beyond the blocks; at 15 nothing."""
    def off(seed, mo, policy, got, hangs, lost, beyond):
        return cell(seed, mo, policy, probe="offline:block=128M", probe0_offline_params_block="128M",
                    probe0_offline_asked=32, probe0_offline_obtained=got,
                    probe0_offline_success_rate=got / 32, probe0_offline_fail_offline_hangs=hangs,
                    probe0_offline_hazards_offline_lost_pages=lost,
                    probe0_offline_hazards_online_beyond_block_pages=beyond)
    rows = [off(s, 15, p, 30, 0, 0, 0) for s in (1, 2) for p in ("v5.4", "v6.1")]
    rows += [off(s, 16, "v5.4", 14, 16, 262144, 0) for s in (1, 2)]
    rows += [off(s, 16, "v6.1", 30, 0, 0, 786432) for s in (1, 2)]
    findings: list[str] = []
    from reports.report import hotplug_section
    s = hotplug_section(frame(rows), findings)
    table = next(b for b in s.blocks if isinstance(b, render.Table))
    by = {(r[0], r[2]): r for r in table.rows}
    assert by[("v5.4", "16")][3:] == ["43.8%", "50.0%", "1.00", "0.00"]
    assert by[("v6.1", "16")][3:] == ["93.8%", "0.0%", "0.00", "3.00"]
    assert by[("v6.1", "15")][3:] == ["93.8%", "0.0%", "0.00", "0.00"]
    assert findings == [
        "Memory blocks of 128M: hazards from max_order 16 on. Worst for offlining at max_order 16 (v5.4): "
        "43.8% of the blocks offline, 50.0% would hang and 1.00 GiB are lost. Worst for onlining at "
        "max_order 16 (v6.1): 3.00 GiB freed beyond the blocks per pass."]
    assert hotplug_section(frame(rows[:4]), []) is not None
    assert hotplug_section(frame([cell(1)]), []) is None
    # SECTION_SIZE_BITS 27 (the default) builds up to max_order 15; a sweep's section_bits is read
    assert "a kernel builds up to max_order 15;" in s.blocks[1]
    wide = hotplug_section(frame([dict(r, section_bits=29) for r in rows]), [])
    assert "SECTION_SIZE_BITS 29 (the sweep's section_bits), a kernel builds up to max_order 17;" in wide.blocks[1]


def test_the_hotplug_section_gives_virtio_mem_unplug_by_max_order_and_regime():
    """virtio-mem probes alone make the section: a table row per zone, regime and max_order, a
    figure over max_order, and a finding per zone naming each regime's lowest share. By hand: 2 GiB
    asked; ZONE_NORMAL pageblock 1.75 and 1.5 GiB at max_order 10 (mean 81.25%), 1.5 at 18 (75.0%);
    maxorder 1.5 at 10, 0.5 at 18 (25.0%); ZONE_MOVABLE everything."""
    G = 2 ** 30

    def vm(seed, mo, iso, mf, got):
        return cell(seed, mo, probe="virtio-mem:unplug=2G,device=2G", isolation=iso, movable_fraction=mf,
                    probe0_virtio_mem_params_unplug="2G", probe0_virtio_mem_params_device="2G",
                    probe0_virtio_mem_asked=2 * G, probe0_virtio_mem_obtained=got,
                    probe0_virtio_mem_success_rate=got / (2 * G),
                    probe0_virtio_mem_fail_unmovable_in_range=1 if got < 2 * G else 0)
    rows = [vm(1, 10, "pageblock", 0.0, 1.75 * G), vm(2, 10, "pageblock", 0.0, 1.5 * G)]
    rows += [vm(s, 18, "pageblock", 0.0, 1.5 * G) for s in (1, 2)]
    rows += [vm(s, 10, "maxorder", 0.0, 1.5 * G) for s in (1, 2)]
    rows += [vm(s, 18, "maxorder", 0.0, 0.5 * G) for s in (1, 2)]
    rows += [vm(s, mo, iso, 0.5, 2 * G) for s in (1, 2) for mo in (10, 18) for iso in ("pageblock", "maxorder")]
    findings: list[str] = []
    from reports.report import hotplug_section
    s = hotplug_section(frame(rows), findings)
    table = next(b for b in s.blocks if isinstance(b, render.Table))
    by = {(r[0], r[1], r[2]): r[3:] for r in table.rows}
    assert by[("ZONE_NORMAL", "pageblock", "10")] == ["81.2%", "1.625", "2.000"]
    assert by[("ZONE_NORMAL", "maxorder", "18")] == ["25.0%", "0.500", "2.000"]
    assert by[("ZONE_MOVABLE", "maxorder", "18")] == ["100.0%", "2.000", "2.000"]
    fig = next(b for b in s.blocks if getattr(b, "name", "") == "virtio-mem-unplug")
    assert set(fig.data["zone"]) == {"ZONE_NORMAL", "ZONE_MOVABLE"} and set(fig.data["regime"]) == {"pageblock", "maxorder"}
    assert findings == [
        "virtio-mem in ZONE_MOVABLE: with maxorder isolation all of it at every max_order; with "
        "pageblock isolation all of it at every max_order.",
        "virtio-mem in ZONE_NORMAL: with maxorder isolation the lowest is 25.0% at max_order 18; with "
        "pageblock isolation the lowest is 75.0% at max_order 18."]
    fig.draw()
