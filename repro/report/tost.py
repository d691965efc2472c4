"""Equivalence of retrains to a reference AP: Student t quantiles and the two one-sided tests (TOST).

    result = repro.report.tost.tost([0.621, 0.624, 0.622], reference=0.623, margin=0.005)

TOST (Schuirmann 1987) declares the mean AP equivalent to the reference when both one-sided nulls,
mean <= reference - margin and mean >= reference + margin, are rejected at level alpha; that is, when the
(1 - 2 alpha) confidence interval mean ± t(1-alpha, n-1) · s/sqrt(n) lies inside reference ± margin.
scipy is not a dependency: the t CDF is the regularised incomplete beta function (continued fraction,
Numerical Recipes §6.4) and the quantile is found by bisection.
"""
import math
from dataclasses import dataclass

MIN_SEEDS = 2   # a sample standard deviation needs two values


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) for 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):   # the fraction converges fast on this side; use symmetry on the other
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (0 < p < 1), by bisection to 1e-12."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p={p} is not in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Equivalence:
    """TOST of a sample mean against reference ± margin. `verdict`: equivalent | not_equivalent |
    not_enough_seeds (fewer than MIN_SEEDS values: never a pass)."""

    n: int
    mean: float | None
    std: float | None          # sample standard deviation (ddof=1)
    reference: float
    margin: float
    alpha: float
    ci_low: float | None       # the (1 - 2 alpha) confidence interval of the mean
    ci_high: float | None
    p_value: float | None      # max of the two one-sided p-values
    verdict: str


def tost(values, reference: float, margin: float, alpha: float = 0.05) -> Equivalence:
    """Two one-sided t tests of H0: |mean - reference| >= margin.

    Args:
        values: one metric (e.g. AP) per retrain seed.
        reference: the value to be equivalent to (published AP, or the smoke baseline mean).
        margin: the equivalence margin (the tier's tolerance).
        alpha: the level of each one-sided test.

    Returns:
        An `Equivalence`; "equivalent" only when both one-sided nulls are rejected.
    """
    values = [float(v) for v in values]
    n = len(values)
    if n < MIN_SEEDS or not all(math.isfinite(v) for v in values):
        mean = sum(values) / n if n and all(map(math.isfinite, values)) else None
        return Equivalence(n, mean, None, reference, margin, alpha, None, None, None, "not_enough_seeds")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se, df = std / math.sqrt(n), n - 1
    half = t_quantile(1.0 - alpha, df) * se
    if se == 0.0:   # identical values: each one-sided test is decided by the sign alone
        p = 0.0 if abs(mean - reference) < margin else 1.0
    else:
        p_lower = 1.0 - t_cdf((mean - (reference - margin)) / se, df)   # H0: mean <= reference - margin
        p_upper = t_cdf((mean - (reference + margin)) / se, df)         # H0: mean >= reference + margin
        p = max(p_lower, p_upper)
    verdict = "equivalent" if p < alpha else "not_equivalent"
    return Equivalence(n, mean, std, reference, margin, alpha, mean - half, mean + half, p, verdict)
