"""Means, 95% confidence intervals over seeds, % change and significance (mmtests convention).

A confidence interval is the Student t interval of the mean, mean +- t(0.975, n-1) * s / sqrt(n),
with s the sample standard deviation (ddof 1). The t quantile is computed here from the exact
closed form of Student's distribution for an integer number of degrees of freedom (Abramowitz
and Stegun 26.7.3 and 26.7.4) and bisection, so the reports need no statistics package.

Two means differ significantly when their confidence intervals do not overlap: the rule of
mmtests compare-kernels, which marks such a % change with `*`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

LEVEL = 0.95


def t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with `df` (a positive integer) degrees of freedom."""
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df!r}")
    if t <= 0:
        return 0.0
    if math.isinf(t):
        return 1.0
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if df % 2 == 1:
        # A(t|v) = 2/pi * (theta + sin(theta) * (cos + 2/3 cos^3 + ... + (2.4...(v-3))/(1.3...(v-2)) cos^(v-2)))
        total, term = 0.0, c
        if df > 1:
            total = term
            for k in range(3, df - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        return 2.0 / math.pi * (theta + s * total)
    # A(t|v) = sin(theta) * (1 + 1/2 cos^2 + (1.3)/(2.4) cos^4 + ... + (1.3...(v-3))/(2.4...(v-2)) cos^(v-2))
    total, term = 1.0, 1.0
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return s * total


def t_quantile(level: float, df: int) -> float:
    """t such that P(|T| < t) = level: the half-width factor of a `level` confidence interval
    (t_quantile(0.95, 2) = 4.3027, the 0.975 quantile of Student's t with 2 degrees of freedom)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    lo, hi = 0.0, 1.0
    while t_two_sided_mass(hi, df) < level:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_two_sided_mass(mid, df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Estimate:
    """A mean over n samples with its confidence interval (lo, hi; NaN when n < 2)."""
    mean: float
    lo: float
    hi: float
    n: int
    sd: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0


def mean_ci(values: Iterable[float], level: float = LEVEL) -> Estimate:
    """Mean and Student t confidence interval of `values` (NaN values are left out)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, 0, nan)
    mean = math.fsum(xs) / n
    if n < 2:
        nan = float("nan")
        return Estimate(mean, nan, nan, 1, nan)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(level, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, sd)


def change_pct(base: float, other: float, higher_is_better: bool) -> float:
    """% change from `base` to `other`, positive when `other` is better (mmtests compare-kernels):
    for a cost (lower is better) (base - other) / base, for a rate (other - base) / base.
    NaN when the base is 0 or either value is missing."""
    if base is None or other is None or math.isnan(base) or math.isnan(other) or base == 0:
        return float("nan")
    diff = (other - base) if higher_is_better else (base - other)
    return 100.0 * diff / abs(base)


def significant(a: Estimate, b: Estimate) -> bool:
    """True when the two confidence intervals do not overlap (both need n >= 2)."""
    if a.n < 2 or b.n < 2 or any(math.isnan(x) for x in (a.lo, a.hi, b.lo, b.hi)):
        return False
    return a.hi < b.lo or b.hi < a.lo


def gmean(values: Iterable[float]) -> float:
    """Geometric mean of the positive finite values (NaN if there are none)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not xs:
        return float("nan")
    return math.exp(math.fsum(math.log(x) for x in xs) / len(xs))
