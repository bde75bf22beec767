"""Statistics over seeds against values computed by hand (t quantiles from printed tables)."""

from __future__ import annotations

import math

import pytest

from mnist_suite.stats import median_spread, paired, summarize, trimmed_mean, welch

T_975_DF2 = 4.302652729749464  # Student t, 97.5th percentile, 2 degrees of freedom
T_975_DF4 = 2.7764451051977987  # ... 4 degrees of freedom


def test_three_runs_by_hand():
    s = summarize([0.96, 0.97, 0.98])
    assert s.n == 3
    assert s.mean == pytest.approx(0.97, abs=1e-12)
    assert s.sd == pytest.approx(0.01, abs=1e-12)  # sqrt((1e-4 + 0 + 1e-4) / 2)
    half = T_975_DF2 * 0.01 / math.sqrt(3)  # = 0.024841...
    assert s.half_width == pytest.approx(half, rel=1e-9)
    assert (s.ci_low, s.ci_high) == pytest.approx((0.97 - half, 0.97 + half), rel=1e-9)
    assert (s.min, s.max) == (0.96, 0.98)
    assert s.trimmed_mean is None  # fewer than five runs: MLPerf's rule does not apply


def test_five_runs_by_hand_with_the_mlperf_trim():
    s = summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert s.mean == 3.0 and s.sd == pytest.approx(math.sqrt(2.5))
    assert s.half_width == pytest.approx(T_975_DF4 * math.sqrt(2.5) / math.sqrt(5), rel=1e-9)
    assert s.trimmed_mean == 3.0
    assert trimmed_mean([1.0, 2.0, 3.0, 4.0, 10.0]) == 3.0  # the outlier and the best dropped
    assert trimmed_mean([1.0, 1.0, 9.0, 9.0, 9.0, 9.0]) == 7.0  # one of each end, not all ties


def test_one_run_has_no_interval_and_says_so():
    s = summarize([0.9608])
    assert (s.n, s.mean, s.sd, s.ci_low, s.half_width) == (1, 0.9608, None, None, None)
    assert s.interval_note == "one run: no interval"
    assert s.contains(0.9608) is None


def test_missing_and_diverged_values_are_left_out():
    s = summarize([0.5, None, float("nan"), 0.7])
    assert s.n == 2 and s.mean == pytest.approx(0.6)
    assert summarize([]).n == 0 and summarize([None]).mean is None


def test_identical_runs_have_a_zero_width_interval():
    s = summarize([0.25, 0.25, 0.25])
    assert s.sd == 0.0 and (s.ci_low, s.ci_high) == (0.25, 0.25) and s.contains(0.25)


def test_seed_figure_inside_or_outside_the_interval():
    s = summarize([0.955, 0.960, 0.965, 0.958, 0.962])
    assert s.contains(0.9608) is True
    assert s.contains(0.97) is False


def test_median_spread():
    assert median_spread([3.0, None, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert median_spread([None]) == (None, None, None)


def test_no_spread_over_two_seeds_is_too_few_seeds_never_certainty():
    # Both seeds moved by +0.12 pt exactly: two agreeing seeds prove nothing.
    d = paired({0: 0.95, 1: 0.96}, {0: 0.9512, 1: 0.9612})
    assert d.diff == pytest.approx(0.0012, abs=1e-12)
    assert (d.low, d.high, d.p_value, d.pairs) == (None, None, None, 2)
    assert d.why == (
        "no spread over 2 seeds (every seed moved by the same amount): "
        "too few to judge a change against"
    )
    w = welch((2, 0.95, 0.0), (2, 0.9512, 0.0))
    assert (w.low, w.p_value) == (None, None) and w.why.startswith("no spread over 2 seeds")
    assert paired({0: 0.95}, {0: 0.9512}).p_value is None  # one seed: no interval at all
    assert welch((1, 0.95, None), (5, 0.96, 0.01)).p_value is None
    # Identical sides stay "no difference" (p = 1), whatever their number of seeds.
    same = paired({0: 0.95, 1: 0.96}, {0: 0.95, 1: 0.96})
    assert (same.diff, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_no_spread_from_three_seeds_is_taken_as_it_reads():
    # Equal shifts differ in the last bits ((a + d) - a != d): rounding is no spread.
    base = {0: 0.95, 1: 0.96, 2: 0.97}
    d = paired(base, {s: v + 0.0012 for s, v in base.items()})
    assert d.p_value == 0.0 and d.low == d.high == d.diff == pytest.approx(0.0012, abs=1e-12)
    w = welch((3, 0.95, 0.0), (3, 0.9512, 1e-18))
    assert w.p_value == 0.0 and w.low == w.high == w.diff


def test_a_real_spread_is_tested_as_before():
    from scipy import stats

    base, new = [0.95, 0.96, 0.97], [0.9512, 0.9615, 0.9711]
    d = paired(dict(enumerate(base)), dict(enumerate(new)))
    assert d.p_value == pytest.approx(stats.ttest_rel(new, base).pvalue, rel=1e-9)


def _first_decided(diff, sd_of, df_of, level, min_effect, margin, start, cap=1000):
    """The seeds to decide, by walking n' up one at a time with SciPy's own t quantile."""
    from scipy import stats

    for n in range(start, cap + 1):
        half = stats.t.ppf((1 + level) / 2, df_of(n)) * sd_of(n)
        size = abs(diff)
        if (size >= min_effect and half < size) or (size < margin and size + half < margin):
            return n
    return None


def test_seeds_to_decide_is_the_first_seed_count_that_decides():
    from mnist_suite.stats import seeds_to_decide

    # Paired: a mean difference of 0.08 pt with a per-seed sd of 0.2 pt, at 5 pairs, at the
    # level of a family of two rows (97.5%), a 0.1 pt margin: equivalence takes more pairs.
    args = (0.0008, 0.002, 0.975, 0.001, 0.001)
    found = seeds_to_decide(args[0], (args[1],), (5,), *args[2:])
    direct = _first_decided(args[0], lambda n: args[1] / math.sqrt(n), lambda n: n - 1,
                            *args[2:], start=6)  # fmt: skip
    assert found == direct and 40 < found < 1000, found
    # A difference beyond the minimum effect: decided once its interval excludes zero.
    big = seeds_to_decide(-0.003, (0.004,), (4,), 0.95, 0.001, 0.001)
    direct = _first_decided(-0.003, lambda n: 0.004 / math.sqrt(n), lambda n: n - 1, 0.95,
                            0.001, 0.001, start=5)  # fmt: skip
    assert big == direct and 5 <= big < 20
    # Welch: both sides grow with their own sds; the side that holds more keeps them.
    sds, sizes = (0.003, 0.006), (10, 4)

    def welch_sd(n):
        return math.sqrt(sum(s**2 / max(n, k) for s, k in zip(sds, sizes, strict=True)))

    def welch_df(n):
        parts = [s**2 / max(n, k) for s, k in zip(sds, sizes, strict=True)]
        grown = [max(n, k) for k in sizes]
        return sum(parts) ** 2 / sum(p**2 / (g - 1) for p, g in zip(parts, grown, strict=True))

    welch = seeds_to_decide(0.004, sds, sizes, 0.95, 0.001, 0.001)
    assert welch == _first_decided(0.004, welch_sd, welch_df, 0.95, 0.001, 0.001, start=5)
    # Nothing decides it up to the cap: a difference of zero with a huge spread, or one that
    # lies between the margin and the minimum effect.
    assert seeds_to_decide(0.0, (0.5,), (4,), 0.95, 0.001, 0.001) is None
    assert seeds_to_decide(0.003, (0.001,), (4,), 0.95, 0.005, 0.001) is None
    assert seeds_to_decide(0.0, (0.5,), (1000,), 0.95, 0.001, 0.001) is None  # at the cap
