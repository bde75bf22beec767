"""Statistics over replicates (seeds): what a reviewer needs to trust a figure.

For the values of one (job, cell, profile, config) over its seeds: n, mean, standard deviation,
min, max, the 95% confidence interval of the mean (Student t, SciPy), and MLPerf's trimmed
mean (drop the best and the worst of five or more runs, average the rest). One run has no
spread: its interval is None and ``interval_note`` says why.

The one place intervals are computed, each for its question: :func:`t_interval` (a mean's, from
n, mean and sd), :func:`prediction_interval` (where one more run would fall: the question for
an original project's single figure), :func:`difference` (two sides' means: paired on the seeds
both hold, Welch otherwise), :func:`holm` / :func:`holm_adjusted` (a family
of verdicts at once) and :func:`seeds_to_decide` (how many seeds would likely settle a
difference that is neither shown nor ruled out).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95
TRIM_MIN_RUNS = 5  # MLPerf drops the fastest and slowest of at least five results
# A spread this small next to the figures themselves is floating-point rounding, not spread:
# (a + d) - a differs from d in the last bits, so equal shifts never give a zero sd exactly.
ROUNDING = 1e-9
# Without any spread a difference has no noise to be judged against: two seeds that agree may
# agree by chance (accuracies move in steps of one test image), so a zero spread proves
# nothing below three seeds; from three on it is taken as what it says (no noise).
NO_SPREAD_MIN_SEEDS = 3


@dataclass(frozen=True)
class Summary:
    """Summary statistics of one figure over seeds (NaN and None values are left out)."""

    n: int
    mean: float | None
    sd: float | None  # sample standard deviation (ddof=1); None for n < 2
    min: float | None
    max: float | None
    ci_low: float | None  # 95% Student-t interval of the mean; None for n < 2
    ci_high: float | None
    trimmed_mean: float | None  # MLPerf: mean without the best and worst; None for n < 5
    interval_note: str = ""

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (the ``±`` of ``mean ± h``), or None."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2

    def contains(self, value: float) -> bool | None:
        """Does the interval hold ``value``? None when there is no interval."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low <= value <= self.ci_high

    def as_dict(self) -> dict:
        return {**asdict(self), "half_width": self.half_width}


def _finite(values: Iterable[float | None]) -> np.ndarray:
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return np.asarray(kept, dtype=np.float64)


def trimmed_mean(values: Sequence[float]) -> float | None:
    """MLPerf's rule: with >= 5 values drop one best and one worst, average the rest."""
    x = np.sort(_finite(values))
    if len(x) < TRIM_MIN_RUNS:
        return None
    return float(x[1:-1].mean())


def summarize(values: Iterable[float | None], confidence: float = CONFIDENCE) -> Summary:
    """n, mean, sd, min, max, Student-t interval of the mean and the trimmed mean.

    Parameters
    ----------
    values : iterable of float or None
        One figure per seed; None and non-finite values (a diverged run) are left out.
    confidence : float
        Coverage of the interval (0.95).
    """
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Summary(0, None, None, None, None, None, None, None, "no finished runs")
    mean = float(x.mean())
    low = high = sd = None
    note = ""
    if n == 1:
        note = "one run: no interval"
    else:
        sd = float(x.std(ddof=1))
        if sd == 0.0:
            low = high = mean  # identical runs: no spread, no width
        else:
            # SciPy's t.interval to the last bit or one unit beside it, without its argument
            # checks (three quarters of a calibration's time went there).
            half = t_quantile(confidence, n - 1) * (sd / math.sqrt(n))
            low, high = mean - half, mean + half
    return Summary(
        n=n,
        mean=mean,
        sd=sd,
        min=float(x.min()),
        max=float(x.max()),
        ci_low=low,
        ci_high=high,
        trimmed_mean=trimmed_mean(x),
        interval_note=note,
    )


def median_spread(
    values: Iterable[float | None],
) -> tuple[float | None, float | None, float | None]:
    """(median, min, max) of the finite values, or Nones: for times, where means mislead."""
    x = _finite(values)
    if not len(x):
        return None, None, None
    return float(np.median(x)), float(x.min()), float(x.max())


def t_quantile(confidence: float, df: float) -> float:
    """The two-sided Student-t quantile: ``t`` with ``P(|T| <= t) = confidence``."""
    # SciPy's own t.ppf computes this function, behind argument checks that cost a hundred
    # times more than the value: compare asks for thousands of them.
    from scipy import special

    return float(special.stdtrit(df, (1 + confidence) / 2))


def _two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's T with ``df`` degrees of freedom (SciPy's t.sf, doubled)."""
    from scipy import special

    return float(2 * special.stdtr(df, -abs(t)))


def t_interval(
    mean: float, sd: float | None, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """The Student-t interval of a mean from its n, mean and sample sd; None for n < 2."""
    if n < 2 or sd is None:
        return None
    half = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def prediction_interval(
    mean: float, sd: float | None, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Where one more run would fall: ``mean ± t(n-1) · sd · √(1 + 1/n)``; None for n < 2.

    The interval for judging a single figure (an original project's one run) against ours;
    the mean's interval shrinks with n and would call any single run "outside" in the end.
    """
    if n < 2 or sd is None:
        return None
    half = t_quantile(confidence, n - 1) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


@dataclass(frozen=True)
class Difference:
    """NEW − BASE of a figure's mean: the interval, the p-value of "no difference" and how."""

    diff: float
    low: float | None
    high: float | None
    p_value: float | None
    method: str  # "paired" (per-seed differences) or "Welch"
    pairs: int = 0  # seeds on both sides (paired only)
    why: str = ""  # why there is no p-value (too few seeds), when there is none
    sd: float | None = None  # sample sd of the per-seed differences (paired only)


def _without_spread(diff: float, n: int, method: str, pairs: int, what: str) -> Difference:
    """A difference whose noise measures zero: identical sides give p = 1; a shift with no
    spread is certain only from :data:`NO_SPREAD_MIN_SEEDS` seeds, too few seeds below."""
    sd = 0.0 if method == "paired" else None
    if diff == 0:
        return Difference(0.0, 0.0, 0.0, 1.0, method, pairs, sd=sd)
    if n < NO_SPREAD_MIN_SEEDS:
        why = f"no spread over {n} seeds ({what}): too few to judge a change against"
        return Difference(diff, None, None, None, method, pairs, why, sd)
    return Difference(diff, diff, diff, 0.0, method, pairs, sd=sd)


def paired(
    base: dict[int, float], new: dict[int, float], confidence: float = CONFIDENCE
) -> Difference:
    """The interval of the per-seed differences NEW − BASE over the seeds both sides hold.

    With deterministic seeds a seed's difference is the change's effect alone: identical sides
    give exactly 0 with a zero-width interval. Equal differences over fewer than
    :data:`NO_SPREAD_MIN_SEEDS` seeds give no p-value (too few seeds), never certainty.
    """
    seeds = sorted(base.keys() & new.keys())
    d = np.asarray([new[s] - base[s] for s in seeds], dtype=np.float64)
    mean = float(d.mean())
    if len(d) < 2:
        why = f"{len(d)} seed{'s' * (len(d) != 1)} on both sides: an interval needs two"
        return Difference(mean, None, None, None, "paired", len(d), why)
    sd = float(d.std(ddof=1))
    scale = max(abs(v) for s in seeds for v in (base[s], new[s]))
    if sd <= ROUNDING * scale:
        what = "every seed moved by the same amount"
        return _without_spread(mean, len(d), "paired", len(d), what)
    low, high = t_interval(mean, sd, len(d), confidence)
    p = _two_sided_p(mean / (sd / math.sqrt(len(d))), len(d) - 1)
    return Difference(mean, low, high, p, "paired", len(d), sd=sd)


def welch(
    base: tuple[int, float, float | None],
    new: tuple[int, float, float | None],
    confidence: float = CONFIDENCE,
) -> Difference:
    """Welch's interval of NEW − BASE from each side's (n, mean, sd): unpaired sides."""
    (nb, mb, sb), (nn, mn, sn) = base, new
    diff = mn - mb
    if nb < 2 or nn < 2 or sb is None or sn is None:
        why = f"{nb} seed{'s' * (nb != 1)} on base, {nn} on new: an interval needs two on each"
        return Difference(diff, None, None, None, "Welch", why=why)
    vb, vn = sb**2 / nb, sn**2 / nn
    if vb**2 + vn**2 == 0 or max(sb, sn) <= ROUNDING * max(abs(mb), abs(mn)):
        what = "each side the same figure on every seed"
        return _without_spread(diff, min(nb, nn), "Welch", 0, what)
    df = (vb + vn) ** 2 / (vb**2 / (nb - 1) + vn**2 / (nn - 1))
    se = math.sqrt(vb + vn)
    half = t_quantile(confidence, df) * se
    p = _two_sided_p(diff / se, df)
    return Difference(diff, diff - half, diff + half, p, "Welch")


def paired_seeds(
    base_values: dict[int, float] | None, new_values: dict[int, float] | None
) -> list[int] | None:
    """The seeds a difference pairs on: those both sides hold values of, when there are at
    least two (None: the sides are unpaired).

    Two sides that share seeds are not independent samples, so Welch's test does not fit them;
    the paired test does, on the shared seeds alone (a gate's four seeds against a baseline's
    ten pair on those four).
    """
    if not base_values or not new_values:
        return None
    seeds = sorted(base_values.keys() & new_values.keys())
    return seeds if len(seeds) > 1 else None


def difference(
    base: tuple[int, float, float | None],
    new: tuple[int, float, float | None],
    base_values: dict[int, float] | None = None,
    new_values: dict[int, float] | None = None,
    confidence: float = CONFIDENCE,
) -> Difference:
    """Paired by seed on the seeds both sides hold values of (:func:`paired_seeds`), Welch from
    (n, mean, sd) otherwise."""
    if paired_seeds(base_values, new_values):
        return paired(base_values, new_values, confidence)
    return welch(base, new, confidence)


def holm_adjusted(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's adjusted p-values: the smallest family-wide rate at which Holm's step-down rule
    rejects each hypothesis (None: not tested, and not counted in the family).

    Sorted ascending, the k-th of m is ``max over j <= k of (m - j + 1) · p_(j)``, at most 1.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    m, running = len(tested), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def holm(p_values: Sequence[float | None], alpha: float) -> list[bool]:
    """Holm's step-down rule: which of the hypotheses to reject so that the chance of any false
    rejection among them stays at most ``alpha`` (None: not tested, never rejected)."""
    return [a is not None and a <= alpha for a in holm_adjusted(p_values)]


# How far :func:`seeds_to_decide` looks: beyond this many seeds the answer is "more than".
DECIDE_CAP = 1000


def seeds_to_decide(
    diff: float,
    sds: tuple[float, ...],
    sizes: tuple[int, ...],
    level: float,
    min_effect: float,
    margin: float,
    cap: int = DECIDE_CAP,
) -> int | None:
    """The smallest number of seeds n' above the current one at which a difference like this
    one would likely be decided, or None up to ``cap``: a point estimate, from the observed
    difference and spread taken as the truth.

    Paired (``sds`` the sd of the per-seed differences, ``sizes`` the pairs): the interval's
    half-width at n' pairs is ``t(level, n' - 1) · sd / √n'``. Welch (``sds`` and ``sizes``
    each side's): both sides grow to n' seeds (a side that holds more keeps them) with their
    observed sds, Welch's degrees of freedom. Decided at n' when either the difference reaches
    ``min_effect`` and the interval excludes zero (better or worse; Bonferroni's interval,
    a little stricter than Holm's rule), or it is below ``margin`` and the whole interval lies
    inside ``±margin`` (equivalent). The half-width falls as n' grows, so once decided a
    difference stays decided: n' is found by bisection.
    """
    size = abs(diff)

    def decided(n: int) -> bool:
        if len(sds) == 1:
            variance, df = sds[0] ** 2 / n, n - 1
        else:
            grown = [max(n, k) for k in sizes]
            parts = [s**2 / g for s, g in zip(sds, grown, strict=True)]
            variance = sum(parts)
            shares = sum(p**2 / (g - 1) for p, g in zip(parts, grown, strict=True))
            df = variance**2 / shares if shares > 0 else math.inf
        half = t_quantile(level, df) * math.sqrt(variance)
        return (size >= min_effect and half < size) or (size < margin and size + half < margin)

    low, high = min(sizes) + 1, cap
    if low > high or not decided(high):
        return None
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if decided(middle) else (middle + 1, high)
    return low
