"""Welch's t-test, written out: trainlib runs where only torch, numpy, pandas and tensorboard are
installed (a GPU machine), so no scipy.

    t, df, p = welch_t_test([0.9769, 0.9741, 0.9755], [0.9773, 0.9790, 0.9748])   # p two-sided

The p-value is the Student t distribution's two-sided tail, P(|T| >= |t|) = I_x(df/2, 1/2) with
x = df / (df + t^2), where I is the regularized incomplete beta function, computed by its continued
fraction (Numerical Recipes 6.4, Cephes' incbet). tests/test_stats.py checks it against
scipy.stats.ttest_ind(a, b, equal_var=False).
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence

EPSILON = 3e-16           # relative change at which the fraction has converged: a few ulps (Cephes' 3 * MACHEP)
TINY = 1e-300             # stands in for a zero denominator in Lentz's method
MAX_TERMS = 100_000       # ~sqrt(a + b) terms are needed; hitting this means a bug, not slow convergence


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a + 1) / (a + b + 2)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > TINY else TINY)
    result = d
    for m in range(1, MAX_TERMS + 1):
        # even step, then odd step, of the fraction's terms
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > TINY else TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > TINY else TINY
            result *= c * d
        if abs(c * d - 1.0) < EPSILON:
            return result
    raise ArithmeticError(f"the incomplete beta fraction did not converge for a={a}, b={b}, x={x}")


def regularized_incomplete_beta(a: float, b: float, x: float, one_minus_x: float | None = None) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1. one_minus_x: 1 - x computed without cancellation,
    when the caller has it (x near 1 loses its digits in 1 - x)."""
    y = 1.0 - x if one_minus_x is None else one_minus_x
    if not (a > 0 and b > 0 and 0.0 <= x <= 1.0):
        raise ValueError(f"I_x(a, b) needs a, b > 0 and 0 <= x <= 1, got a={a}, b={b}, x={x}")
    if x == 0.0 or y == 0.0:
        return 0.0 if x == 0.0 else 1.0
    # x^a y^b / (a B(a, b)), in logarithms: the powers alone under- or overflow for large a, b
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b      # I_x(a, b) = 1 - I_y(b, a)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom (df > 0, any real df)."""
    if math.isnan(t) or not df > 0:
        raise ValueError(f"needs a number t and df > 0, got t={t}, df={df}")
    if math.isinf(t):
        return 0.0
    t2 = t * t
    if math.isinf(t2):
        return 0.0
    return min(1.0, regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2)))


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(t, df, p) of Welch's unequal-variances t-test of mean(a) == mean(b), p two-sided.

    Needs 2 or more finite values on each side (ValueError otherwise). When neither side varies at
    all, no t exists: p is 1.0 if the means are equal and 0.0 if not (a difference that no seed
    changed), t is 0 or +-inf and df is n_a + n_b - 2."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    for side, values in (("a", a), ("b", b)):
        if len(values) < 2:
            raise ValueError(f"Welch's t-test needs at least 2 values on each side; {side} has {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"Welch's t-test needs finite values; {side} holds {values}")
    n_a, n_b = len(a), len(b)
    # statistics' mean and variance sum exactly (in fractions): seeds that agree give a variance of
    # exactly 0 and their own value as mean, and a spread tiny next to the mean loses no digits
    mean_a, mean_b = statistics.mean(a), statistics.mean(b)
    share_a, share_b = statistics.variance(a) / n_a, statistics.variance(b) / n_b
    spread = share_a + share_b
    if spread == 0.0:
        diff = mean_a - mean_b
        return (0.0 if diff == 0 else math.copysign(math.inf, diff)), float(n_a + n_b - 2), (1.0 if diff == 0 else 0.0)
    t = (mean_a - mean_b) / math.sqrt(spread)
    # Welch-Satterthwaite, in shares of the spread so that tiny variances do not underflow when squared
    df = 1.0 / ((share_a / spread) ** 2 / (n_a - 1) + (share_b / spread) ** 2 / (n_b - 1))
    return t, df, t_two_sided_p(t, df)
