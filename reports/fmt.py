"""Numbers as the reports print them."""

from __future__ import annotations

import math


def num(x: float, digits: int = 4) -> str:
    """`digits` significant digits, no exponent, thousands separated (0.3583, 12.35, 1,250)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    mag = math.floor(math.log10(abs(x)))
    if mag >= digits - 1:
        return f"{x:,.0f}"
    return f"{x:.{digits - 1 - mag}f}"


def ratio(x: float) -> str:
    """A ratio with three decimals (1.001)."""
    return "n/a" if x is None or x != x else f"{x:.3f}"


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal (0.5 -> 50.0%)."""
    return "n/a" if x is None or x != x else f"{100 * x:.1f}%"


def ci_text(lo: float, hi: float, fmt=ratio) -> str:
    """'95% CI lo–hi', or why there is none."""
    if lo is None or hi is None or lo != lo or hi != hi:
        return "no CI: one seed"
    return f"95% CI {fmt(lo)}–{fmt(hi)}"
