"""Tidy frame -> matplotlib Figure, drawn with seaborn. Pure: no file I/O, no global state.

Figures are built on `matplotlib.figure.Figure` objects (not pyplot), so drawing one changes
nothing outside it; the theme is applied with `theme()` around each drawing and is defined here
only. A `FigureSpec` is the immutable description of one figure (its data and how to draw it),
made by reports/report.py and drawn only when the report is written, so tests check the data a
figure receives without looking at pixels.
"""

from __future__ import annotations

import contextlib
import io
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.cm  # noqa: E402
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .frames import POLICY_ORDER, format_value, sort_values  # noqa: E402

# -- the theme (the only place it is set) ----------------------------------------------------------

THEME_STYLE = "whitegrid"
THEME_CONTEXT = "notebook"
THEME_FONT_SCALE = 0.9
PALETTE = "colorblind"
DPI = 100
PANEL_W, PANEL_H = 4.4, 3.1
MAX_COLS = 3
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
# colorblind palette indices per policy of frames.POLICY_ORDER (blue, green, purple, vermillion,
# orange, brown, grey): distinct hues
POLICY_PALETTE = (0, 2, 4, 3, 1, 5, 7)
MAX_ORDER_LABEL = "max_order (largest free-block order, inclusive)"


@contextlib.contextmanager
def theme():
    """The report theme (seaborn style, context and palette) for the duration of a drawing."""
    rc = {}
    rc.update(sns.axes_style(THEME_STYLE))
    rc.update(sns.plotting_context(THEME_CONTEXT, font_scale=THEME_FONT_SCALE))
    rc.update({"figure.dpi": DPI, "savefig.dpi": DPI, "axes.titleweight": "bold",
               "figure.titleweight": "bold", "legend.frameon": False})
    with matplotlib.rc_context(rc):
        yield


def colours(name: str, values: Sequence[Any]) -> dict[Any, Any]:
    """A fixed colour per value; policies keep their colour in every figure and report."""
    pal = sns.color_palette(PALETTE, 10)
    if name == "policy":
        return {v: pal[POLICY_PALETTE[POLICY_ORDER.index(v)]] if v in POLICY_ORDER else pal[(5 + i) % 10]
                for i, v in enumerate(values)}
    return {v: pal[i % 10] for i, v in enumerate(values)}


@dataclass(frozen=True)
class FigureSpec:
    """One figure: a name (file stem), a title and caption in plain words, its tidy data and
    the drawing function with its options."""
    name: str
    title: str
    caption: str
    data: pd.DataFrame = field(repr=False, compare=False)
    draw_fn: Callable[..., Figure] = field(repr=False, compare=False)
    options: dict = field(default_factory=dict, repr=False, compare=False)

    def draw(self) -> Figure:
        with theme():
            return self.draw_fn(self.data, **self.options)


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


# -- helpers ---------------------------------------------------------------------------------------

def _grid(n_rows: int, n_cols: int, sharey: str | bool = "row", w: float = PANEL_W, h: float = PANEL_H,
          legend_w: float = 0.0):
    fig = Figure(figsize=(w * n_cols + legend_w, h * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=sharey, sharex=False)
    return fig, axes


def _values(data: pd.DataFrame, col: str | None) -> list:
    if col is None or col not in data:
        return [None]
    return sort_values(col, data[col].dropna().unique().tolist())


def _ordered(values: list, order: Sequence | None) -> list:
    if order is None:
        return values
    return [v for v in order if v in values] + [v for v in values if v not in order]


def _sel(data: pd.DataFrame, **eq) -> pd.DataFrame:
    m = pd.Series(True, index=data.index)
    for k, v in eq.items():
        if k is not None and v is not None:
            m &= data[k] == v
    return data[m]


def _label(name: str | None, v: Any) -> str:
    return "" if name is None else format_value(name, v)


def _legend(fig: Figure, handles: list, title: str | None = None) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", title=title, fontsize="small",
                   title_fontsize="small", ncols=min(len(handles), 6))


def _ratio_axis(ax) -> None:
    ax.axhline(1.0, color="0.35", lw=0.8, zorder=0)


# -- line grids with confidence intervals ------------------------------------------------------------

def draw_lines(data: pd.DataFrame, *, x: str, row: str | None = None, col: str | None = None,
               hue: str | None = None, style: str | None = None, y: str = "mean",
               lo: str = "lo", hi: str = "hi", xlabel: str | None = None,
               ylabels: dict[Any, str] | str = "", row_titles: dict[Any, str] | None = None,
               ratio_line: bool = False, percent: bool = False, ylim: tuple | None = None,
               dodge: float = 0.0, sharey: str | bool = "row", title: str | None = None,
               xticks: Sequence | None = None, xticklabels: Sequence | None = None,
               logx: bool = False, row_order: Sequence | None = None,
               col_order: Sequence | None = None) -> Figure:
    """Mean (`y`) against `x` with 95% CI error bars (`lo`..`hi`): one panel per (row, col) value,
    one colour per `hue` value, one line style per `style` value. Lines of one panel are dodged
    by `dodge` x units so overlapping intervals stay readable."""
    rows = _ordered(_values(data, row), row_order)
    cols = _ordered(_values(data, col), col_order)
    hues, styles = _values(data, hue), _values(data, style)
    pal = colours(hue or "", hues)
    n_lines = len(hues) * len(styles)
    if row is None and len(cols) > MAX_COLS:
        # wrap a long row of panels
        n_rows, n_cols = math.ceil(len(cols) / MAX_COLS), MAX_COLS
        places = [(k // MAX_COLS, k % MAX_COLS, None, cv) for k, cv in enumerate(cols)]
    else:
        n_rows, n_cols = len(rows), len(cols)
        places = [(i, j, rv, cv) for i, rv in enumerate(rows) for j, cv in enumerate(cols)]
    fig, axes = _grid(n_rows, n_cols, sharey=sharey)
    for k in range(len(places), n_rows * n_cols):
        axes[k // n_cols][k % n_cols].set_axis_off()
    last_row = {}
    for i, j, _, _ in places:
        last_row[j] = max(last_row.get(j, 0), i)
    for i, j, rv, cv in places:
        ax = axes[i][j]
        panel = _sel(data, **{k: v for k, v in ((row, rv), (col, cv)) if k})
        k = 0
        for hv in hues:
            for si, sv in enumerate(styles):
                line = _sel(panel, **{kk: vv for kk, vv in ((hue, hv), (style, sv)) if kk})
                line = line.sort_values(x)
                if line.empty:
                    k += 1
                    continue
                off = (k - (n_lines - 1) / 2) * dodge
                xs = line[x].astype(float).to_numpy() + off
                ys = line[y].astype(float).to_numpy()
                err_lo = (ys - line[lo].astype(float).to_numpy()) if lo in line else None
                err_hi = (line[hi].astype(float).to_numpy() - ys) if hi in line else None
                yerr = None
                if err_lo is not None and err_hi is not None:
                    yerr = np.vstack([np.nan_to_num(err_lo), np.nan_to_num(err_hi)])
                ax.errorbar(xs, ys, yerr=yerr, color=pal.get(hv, "C0") if hue else "C0",
                            linestyle=LINESTYLES[si % len(LINESTYLES)],
                            marker=MARKERS[si % len(MARKERS)], markersize=4, capsize=3, lw=1.4,
                            elinewidth=1.0)
                k += 1
        if ratio_line:
            _ratio_axis(ax)
        if not percent:
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        if percent:
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        if ylim is not None:
            ax.set_ylim(*ylim)
        if logx:
            ax.set_xscale("log", base=2)
        if xticks is not None:
            ax.set_xticks(list(xticks))
            if xticklabels is not None:
                ax.set_xticklabels(list(xticklabels))
        elif x in ("max_order", "request_order") and not panel.empty:
            ax.set_xticks(sorted(int(v) for v in panel[x].unique()))
        parts = []
        if row is not None and len(rows) > 1 and not row_titles:
            parts.append(_label(row, rv))
        if col is not None:
            parts.append(_label(col, cv))
        if row_titles and rv in row_titles and (j == 0 or col is not None):
            parts.insert(0, row_titles[rv])
        ax.set_title("\n".join(p for p in parts if p), fontsize="medium")
        ax.set_xlabel(xlabel if (xlabel and i == last_row[j]) else "")
        if j == 0:
            ax.set_ylabel(ylabels.get(rv, "") if isinstance(ylabels, dict) else ylabels)
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=6))
        if not panel.empty:
            ax.tick_params(labelleft=True)
    handles = []
    if hue is not None:
        handles += [Line2D([], [], color=pal[v], lw=2, label=_label(hue, v)) for v in hues]
    if style is not None and len(styles) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=LINESTYLES[i % len(LINESTYLES)],
                           marker=MARKERS[i % len(MARKERS)], label=_label(style, v))
                    for i, v in enumerate(styles)]
    _legend(fig, handles)
    if title:
        fig.suptitle(title)
    return fig


def _errorbar(ax, line: pd.DataFrame, x: str, y: str, lo: str, hi: str, **kw) -> None:
    xs = line[x].astype(float).to_numpy()
    ys = line[y].astype(float).to_numpy()
    yerr = np.vstack([np.nan_to_num(ys - line[lo].astype(float).to_numpy()),
                      np.nan_to_num(line[hi].astype(float).to_numpy() - ys)])
    ax.errorbar(xs, ys, yerr=yerr, capsize=3, lw=1.4, markersize=4, **kw)


def draw_worst_case(data: pd.DataFrame, *, metrics: Sequence[str], metric_labels: dict[str, str],
                    hue: str = "policy", xlabel: str = MAX_ORDER_LABEL) -> Figure:
    """Per measure (one panel each): the average per operation (solid), the most one operation
    did (dashed, when measured) and the bound from the algorithm (black dotted), against x."""
    hues = _values(data, hue)
    pal = colours(hue, hues)
    fig, axes = _grid(1, len(metrics), sharey=False)
    measured = "max_mean" in data and data["max_mean"].notna().any()
    for j, m in enumerate(metrics):
        ax = axes[0][j]
        panel = data[data["metric"] == m]
        for hv in hues:
            line = _sel(panel, **{hue: hv}).sort_values("max_order")
            if line.empty:
                continue
            _errorbar(ax, line, "max_order", "mean", "lo", "hi", color=pal[hv], marker="o")
            if measured:
                _errorbar(ax, line, "max_order", "max_mean", "max_lo", "max_hi", color=pal[hv],
                          marker="x", linestyle="--")
        bound = panel.groupby("max_order")["bound"].max().sort_index()
        ax.plot(bound.index.astype(float), bound.to_numpy(), color="black", linestyle=":", lw=1.6)
        ax.set_xticks(sorted(int(v) for v in panel["max_order"].unique()) if not panel.empty else [])
        ax.set_ylim(bottom=0)
        ax.set_title(metric_labels.get(m, m), fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("per operation" if j == 0 else "")
    handles = [Line2D([], [], color=pal[v], lw=2, label=_label(hue, v)) for v in hues]
    handles += [Line2D([], [], color="0.3", marker="o", label="average per operation")]
    if measured:
        handles += [Line2D([], [], color="0.3", marker="x", linestyle="--", label="most in one operation")]
    handles += [Line2D([], [], color="black", linestyle=":", label="bound from the algorithm")]
    _legend(fig, handles)
    return fig


# -- heatmaps ----------------------------------------------------------------------------------------

def draw_heatmaps(data: pd.DataFrame, *, panel: str = "label", x: str = "max_order",
                  y: str = "pageblock_order", value: str = "success", vmin: float = 0.0,
                  vmax: float = 1.0, cbar_label: str = "success rate",
                  xlabel: str = MAX_ORDER_LABEL, ylabel: str = "pageblock_order") -> Figure:
    """One annotated heatmap per `panel` value (value in vmin..vmax, one shared colour scale)."""
    panels = _values(data, panel)
    n_cols = min(MAX_COLS, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    xs = sort_values(x, data[x].unique().tolist())
    ys = sort_values(y, data[y].unique().tolist())
    w = max(3.6, 0.55 * len(xs) + 1.6)
    h = max(2.4, 0.45 * len(ys) + 1.6)
    fig = Figure(figsize=(w * n_cols + 1.2, h * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    cmap = sns.color_palette("viridis", as_cmap=True)
    norm = mcolors.Normalize(vmin=vmin, vmax=vmax)
    for k, pv in enumerate(panels):
        ax = axes[k // n_cols][k % n_cols]
        sub = _sel(data, **{panel: pv})
        grid = sub.pivot_table(index=y, columns=x, values=value, aggfunc="mean").reindex(index=ys[::-1], columns=xs)
        sns.heatmap(grid, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, cbar=False, annot=True,
                    fmt=".0%", annot_kws={"fontsize": "medium"}, linewidths=0.5, linecolor="white",
                    mask=grid.isna())
        ax.set_title(str(pv), fontsize="medium")
        ax.set_xlabel(xlabel if k // n_cols == n_rows - 1 else "")
        ax.set_ylabel(ylabel if k % n_cols == 0 else "")
        ax.tick_params(axis="y", rotation=0)
    for k in range(len(panels), n_rows * n_cols):
        axes[k // n_cols][k % n_cols].set_axis_off()
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=axes.ravel().tolist(), shrink=0.8, format=matplotlib.ticker.PercentFormatter(1.0))
    cb.set_label(cbar_label)
    return fig


# -- bars --------------------------------------------------------------------------------------------

def draw_failures(data: pd.DataFrame, *, col: str = "workload") -> Figure:
    """Failure reasons per probe (horizontal stacked bars: reasons met per attempt)."""
    cols = _values(data, col)
    reasons = sorted(data["reason"].unique().tolist())
    pal = dict(zip(reasons, sns.color_palette("Set2", len(reasons))))
    labels = sort_values("label", data["label"].unique().tolist())
    fig, axes = _grid(1, len(cols), sharey=True, w=PANEL_W + 0.4, h=max(2.6, 0.42 * len(labels) + 1.4))
    top = max(float(data.groupby([col, "label"])["per_attempt"].sum().max()) if len(data) else 0.0, 1e-9)
    for j, cv in enumerate(cols):
        ax = axes[0][j]
        sub = _sel(data, **{col: cv})
        left = np.zeros(len(labels))
        for r in reasons:
            vals = np.array([float(sub[(sub["label"] == lb) & (sub["reason"] == r)]["per_attempt"].sum())
                             for lb in labels])
            ax.barh(np.arange(len(labels)), vals, left=left, color=pal[r], label=r, height=0.65)
            left += vals
        ax.set_yticks(np.arange(len(labels)))
        ax.set_yticklabels(labels)
        ax.invert_yaxis()
        ax.set_title(_label(col, cv), fontsize="medium")
        ax.set_xlim(0, top * 1.05)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=4))
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel("reasons met, % of attempts")
    handles = [matplotlib.patches.Patch(color=pal[r], label=r.replace("_", " ")) for r in reasons]
    _legend(fig, handles, title="reason")
    return fig


def draw_changes(data: pd.DataFrame, *, label: str = "row", value: str = "change",
                 mark: str = "significant") -> Figure:
    """The largest % changes (better is positive) as horizontal bars; significant changes
    (non-overlapping 95% CIs) are solid, the others hatched and pale."""
    d = data.reset_index(drop=True)
    labels = [textwrap.fill(str(x), 70) for x in d[label]]
    lines = sum(x.count("\n") + 1 for x in labels)
    h = max(2.4, 0.2 * lines + 0.16 * len(d) + 1.4)
    fig = Figure(figsize=(12.5, h), layout="constrained")
    ax = fig.subplots()
    pal = sns.color_palette(PALETTE, 4)
    better, worse = pal[2], pal[3]
    for i, r in d.iterrows():
        v = float(r[value])
        c = better if v >= 0 else worse
        sig = bool(r[mark])
        ax.barh(i, v, color=c, alpha=1.0 if sig else 0.35, hatch=None if sig else "//",
                edgecolor=c, height=0.7)
        ax.text(v, i, f" {v:+.1f}%{' *' if sig else ''} ", va="center",
                ha="left" if v >= 0 else "right", fontsize="small")
    ax.set_yticks(range(len(d)))
    ax.set_yticklabels(labels, fontsize="small")
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", lw=0.8)
    big = max(1.0, float(np.nanmax(np.abs(d[value].astype(float))))) if len(d) else 1.0
    if big > 200:
        # a few huge changes would flatten the rest: linear within +-10%, logarithmic beyond
        ax.set_xscale("symlog", linthresh=10.0)
        ax.set_xlim(-big * 40, big * 40)
        ax.set_xlabel("% change, better is positive (logarithmic beyond ±10%)")
    else:
        ax.set_xlim(-big * 1.35, big * 1.35)
        ax.set_xlabel("% change, better is positive")
    handles = [matplotlib.patches.Patch(color=better, label="better"),
               matplotlib.patches.Patch(color=worse, label="worse"),
               matplotlib.patches.Patch(facecolor="white", edgecolor="0.4", hatch="//",
                                        label="not significant (95% CIs overlap)")]
    _legend(fig, handles)
    return fig


# -- zone maps -------------------------------------------------------------------------------------

# colorblind palette index per pageblock kind: a migratetype of the model and the content of a
# kernel's block that corresponds to it share a hue (movable: blue, unmovable: vermillion,
# reclaimable: green)
ZONE_MAP_HUES = {"Movable": 0, "Unmovable": 3, "Reclaimable": 2, "HighAtomic": 4, "CMA": 8,
                 "Isolate": 7, "LRU pages (movable content)": 0, "kernel pages (unmovable content)": 3,
                 "slab (reclaimable or unmovable content)": 2}
ZONE_MAP_FREE = (0.86, 0.86, 0.86)       # a block whose pages are all free (kernel side: no content)
ZONE_MAP_HOLE = (0.0, 0.0, 0.0)
ZONE_MAP_COLS = 64


def zone_map_colour(kind: str, free: float, hole: bool) -> tuple[float, float, float]:
    """A block's colour: its kind's hue, lighter the more of it is free; holes black."""
    if hole or kind == "hole":
        return ZONE_MAP_HOLE
    if kind not in ZONE_MAP_HUES:
        return ZONE_MAP_FREE
    base = np.array(sns.color_palette(PALETTE, 10)[ZONE_MAP_HUES[kind]])
    w = 0.85 * min(max(free, 0.0), 1.0)
    return tuple(float(x) for x in base * (1 - w) + w)


def draw_zone_maps(data: pd.DataFrame, *, panel: str = "side", cols: int = ZONE_MAP_COLS) -> Figure:
    """One grid of pageblocks per value of `panel` (block order left to right, top to bottom):
    colour from `kind`, lighter with `free`, black for `hole`, a red frame for `isolated`."""
    panels = list(dict.fromkeys(data[panel].tolist()))
    first = int(data["block"].min())
    rows = (int(data["block"].max()) - first) // cols + 1
    fig, axes = _grid(1, len(panels), sharey=True, w=6.4, h=max(1.6, 0.1 * rows + 1.0))
    for j, pv in enumerate(panels):
        ax = axes[0][j]
        sub = data[data[panel] == pv]
        img = np.ones((rows, cols, 3))
        for b, kind, free, hole, iso in zip(sub["block"], sub["kind"], sub["free"], sub["hole"], sub["isolated"]):
            r, c = divmod(int(b) - first, cols)
            img[r, c] = zone_map_colour(kind, float(free), bool(hole))
            if iso:
                ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                                          edgecolor="red", linewidth=1.0))
        ax.imshow(img, interpolation="nearest", aspect="equal")
        ax.set_title(str(pv), fontsize="medium")
        ax.set_xticks([])
        ax.set_yticks([0, rows - 1] if rows > 1 else [0])
        ax.set_yticklabels([f"block {first}", f"block {first + (rows - 1) * cols}"][:2 if rows > 1 else 1],
                           fontsize="small")
        ax.grid(False)
    kinds = [k for k in ZONE_MAP_HUES if k in set(data["kind"])]
    handles = [matplotlib.patches.Patch(color=zone_map_colour(k, 0.0, False), label=k) for k in kinds]
    handles.append(matplotlib.patches.Patch(color=zone_map_colour("Movable", 1.0, False),
                                            label="lighter: more of the block free"))
    if (data["kind"] == "free").any():
        handles.append(matplotlib.patches.Patch(color=ZONE_MAP_FREE, label="all free"))
    if data["hole"].any():
        handles.append(matplotlib.patches.Patch(color=ZONE_MAP_HOLE, label="hole / reserved"))
    if data["isolated"].any():
        handles.append(matplotlib.patches.Patch(facecolor="white", edgecolor="red", label="isolated"))
    _legend(fig, handles, title="pageblock")
    return fig
