"""Welch's t-test written out (trainlib/stats.py): against scipy on many samples, known values, edges."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainlib.stats import regularized_incomplete_beta, t_two_sided_p, welch_t_test

# scipy 1.17.1's values (scipy.stats.ttest_ind(a, b, equal_var=False)): checked without scipy installed.
KNOWN = [
    ([97.69, 97.73, 97.41, 97.60], [96.96, 97.19, 97.05, 97.30], 4.661328113139041, 5.983141399777981,
     0.0034879712839892218),
    ([0.944, 0.951, 0.967], [0.950, 0.958, 0.962], -0.34782608695651207, 3.0020543573294427, 0.7509305822997824),
]


@pytest.mark.parametrize("a, b, t, df, p", KNOWN)
def test_known_values(a, b, t, df, p):
    assert welch_t_test(a, b) == pytest.approx((t, df, p), rel=1e-9)


def test_the_incomplete_beta_and_the_t_tail_match_closed_forms():
    for x in (0.0, 1e-9, 0.2, 0.5, 0.93, 1.0):
        assert regularized_incomplete_beta(1.0, 1.0, x) == pytest.approx(x, abs=1e-15)         # uniform
        assert regularized_incomplete_beta(3.0, 1.0, x) == pytest.approx(x ** 3, rel=1e-12, abs=1e-300)
    for a in (0.5, 2.0, 37.5, 1e4):
        assert regularized_incomplete_beta(a, a, 0.5) == pytest.approx(0.5, rel=1e-12)        # symmetric
    assert regularized_incomplete_beta(2.5, 4.25, 0.3) == pytest.approx(0.3795604781573274, rel=1e-12)
    for t in (0.0, 0.3, 1.0, 12.7, 1e6):                     # df = 1 is the Cauchy distribution
        assert t_two_sided_p(t, 1.0) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-12)
    assert t_two_sided_p(2.5, 3.7) == pytest.approx(0.07182202291182678, rel=1e-12)
    assert t_two_sided_p(1.96, 1e7) == pytest.approx(math.erfc(1.96 / math.sqrt(2)), rel=1e-5)   # ~ normal
    assert t_two_sided_p(-2.5, 3.7) == t_two_sided_p(2.5, 3.7)
    assert t_two_sided_p(math.inf, 4) == 0.0 and t_two_sided_p(1e200, 4) == 0.0


def test_fewer_than_two_values_or_a_non_finite_one_is_a_value_error():
    with pytest.raises(ValueError, match="at least 2 values on each side; a has 1"):
        welch_t_test([0.9], [0.8, 0.7])
    with pytest.raises(ValueError, match="b has 0"):
        welch_t_test([0.9, 0.8], [])
    with pytest.raises(ValueError, match="finite"):
        welch_t_test([0.9, float("nan")], [0.8, 0.7])


def test_no_spread_at_all_is_no_noise_to_compare_with():
    assert welch_t_test([0.97, 0.97], [0.97, 0.97, 0.97]) == (0.0, 3.0, 1.0)       # no difference
    t, df, p = welch_t_test([0.97, 0.97], [0.96, 0.96])                            # a difference no seed changed
    assert (t, df, p) == (math.inf, 2.0, 0.0)
    assert welch_t_test([0.96, 0.96], [0.97, 0.97])[0] == -math.inf
    t, df, p = welch_t_test([0.97, 0.97, 0.97], [0.95, 0.96])                      # one side varies: a real test
    assert df == pytest.approx(1.0) and 0 < p < 1


def test_tiny_spreads_neither_underflow_nor_lose_the_test():
    t, df, p = welch_t_test([1.0, 1.0 + 1e-15, 1.0 + 2e-15], [2.0, 2.0 + 4e-16])
    assert math.isfinite(df) and df > 0 and p < 1e-6


# Accuracies as a test set gives them (correct / total), and general values on a 1e-3 grid: real
# data, not 0.5 against 0.5000000000000001, where rounding in the variance, not the test, decides.
accuracies = st.integers(0, 10_000).map(lambda correct: correct / 10_000)
values = st.integers(-10 ** 6, 10 ** 6).map(lambda k: k / 1000)
samples = st.one_of(st.lists(accuracies, min_size=2, max_size=12), st.lists(values, min_size=2, max_size=30))


@pytest.mark.filterwarnings("ignore:Precision loss occurred")     # scipy's own, on nearly equal values
@settings(max_examples=500, deadline=None)
@given(a=samples, b=samples)
def test_matches_scipy_welch_on_random_samples(a, b):
    scipy_stats = pytest.importorskip("scipy.stats")
    if len(set(a)) == 1 and len(set(b)) == 1:
        return                                      # scipy says nan there; covered above
    t, df, p = welch_t_test(a, b)
    expected = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(float(expected.statistic), rel=1e-9)
    assert df == pytest.approx(float(expected.df), rel=1e-9)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-6, abs=1e-300)
    assert 0.0 <= p <= 1.0
