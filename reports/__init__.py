"""buddyfarm.reports: results -> tidy frames -> figures -> HTML/Markdown reports.

Two entry points, both reading a results folder only (`farm.load`, `sweep.json`), never running
the model:

    make_report(results_dir, out_dir=None) -> (html_path, md_path)
    make_comparison(a_dir, b_dir=None, axis=None, out_dir=None) -> (text_table, html_path, md_path)

Modules: frames (results -> tidy frames), figures (tidy frame -> seaborn figure), stats (means,
confidence intervals, % change, significance), report (the single-sweep document), compare (the
comparison document and its mmtests-style table), render (HTML and Markdown files).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPORT_DIR = "report"


class ReportError(ValueError):
    """A report that cannot be made as asked: the message is one line for the user."""


def _load(results_dir: str | Path):
    import farm
    from farm.sweep.store import StoreError
    path = Path(results_dir)
    if not (path / "parts").is_dir():
        raise ReportError(f"{path}: not a results folder (no parts/ inside)")
    try:
        df = farm.load(path)
    except StoreError as e:
        raise ReportError(str(e)) from None
    try:
        manifest = json.loads((path / "sweep.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        manifest = {}
    return df, manifest


def make_report(results_dir: str, out_dir: str | None = None) -> tuple[str, str]:
    """Write the report of a results folder: OUT/report.html (self-contained) and OUT/report.md
    with OUT/figures/*.png beside it. OUT defaults to RESULTS_DIR/report. Returns the two paths."""
    from . import render
    from .report import build_report
    df, manifest = _load(results_dir)
    doc = build_report(df, str(results_dir), manifest)
    out = Path(out_dir) if out_dir else Path(results_dir) / REPORT_DIR
    html_path, md_path = render.write(doc, out, "report")
    return str(html_path), str(md_path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def make_comparison(a_dir: str, b_dir: str | None = None, axis: str | None = None,
                    out_dir: str | None = None) -> tuple[str, str, str]:
    """Compare two result folders (A is the baseline; cells matched by parameters) or, with `axis`
    ('policy=v6.1,v6.15'), two values of one axis inside folder A (the first value is the
    baseline). Writes OUT/compare.html and OUT/compare.md (figures in OUT/figures/); OUT defaults
    to A/compare-B or A/compare-AXIS. Returns (text table, html path, md path)."""
    from . import compare as C
    from . import render
    if (b_dir is None) == (axis is None):
        raise ReportError("compare: give a second results folder or --axis NAME=BASELINE,OTHER (one of them)")
    df_a, man_a = _load(a_dir)
    try:
        if axis is not None:
            base, other = C.split_axis(df_a, axis, str(a_dir), man_a)
            name, _ = C.parse_axis(axis)
            comparison = C.compare(base, other, exclude=[name])
            default = Path(a_dir) / f"compare-{_slug(axis)}"
        else:
            df_b, man_b = _load(b_dir)
            an, bn = Path(a_dir).resolve().name, Path(b_dir).resolve().name
            if an == bn:
                an, bn = f"A:{an}", f"B:{bn}"
            base = C.Side(an, df_a, str(a_dir), man_a)
            other = C.Side(bn, df_b, str(b_dir), man_b)
            comparison = C.compare(base, other)
            default = Path(a_dir) / f"compare-{_slug(Path(b_dir).resolve().name)}"
    except C.CompareError as e:
        raise ReportError(str(e)) from None
    table = C.text_table(comparison)
    doc = C.build_document(comparison, table, C.title_of(comparison))
    out = Path(out_dir) if out_dir else default
    html_path, md_path = render.write(doc, out, "compare")
    return table, str(html_path), str(md_path)


__all__ = ["make_report", "make_comparison", "ReportError"]
