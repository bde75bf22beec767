"""Statistics over replicates (seeds): what a reviewer needs to trust a figure.

For the values of one (job, cell, profile, config) over its seeds: n, mean, standard deviation,
min, max, the 95% confidence interval of the mean (Student t, SciPy), and MLPerf's trimmed
mean (drop the best and the worst of five or more runs, average the rest). One run has no
spread: its interval is None and ``interval_note`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95
TRIM_MIN_RUNS = 5  # MLPerf drops the fastest and slowest of at least five results


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
        from scipy import stats

        sd = float(x.std(ddof=1))
        if sd == 0.0:
            low = high = mean  # identical runs: SciPy returns NaN bounds for a zero scale
        else:
            low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=stats.sem(x))
            low, high = float(low), float(high)
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
