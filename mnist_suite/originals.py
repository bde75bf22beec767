"""The original projects' single figures against our runs: consistent, borderline or not.

An original project's figure is one unseeded run. Judging it against the interval of *our
mean* would call it "outside" more often the more seeds we run; the question is whether one
more run of ours could have given it. :func:`predictive_p` answers with a p-value: how often one
more run would land at least as far from our mean, from the t distribution with n − 1 degrees
of freedom of ``(original − mean) / (sd · √(1 + 1/n))`` — the statistic whose 95% range is the
prediction interval ``mean ± t(n-1) · sd · √(1 + 1/n)``
(:func:`mnist_suite.stats.prediction_interval`). :func:`mnist_suite.verdicts.original` turns it
into words.

The only tolerance is the one the original's own digits document: a figure printed as 0.6313
may be anything that rounds to it, ±0.00005 (96.08% → ±0.005 pt), and the p-value is taken at
the value within that precision nearest our mean. A figure the source gives only approximately
("about 92.5%") has no precision and is taken as it stands. The figures and their digits come
from ``docs/original-projects.md``, declared by the jobs (``Job.original_figures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from mnist_suite import verdicts
from mnist_suite.stats import Summary, prediction_interval

SOURCE = "docs/original-projects.md"
APPROXIMATE = "about "  # a figure the source gives without a precision
# The verdict's rule in one paragraph, for every table and listing that states it.
RULE = (
    "p: how often one more run of ours would land at least as far from our mean as the "
    "original's figure (two-sided; Student t with n − 1 degrees of freedom, scale "
    "sd·√(1 + 1/n)), the figure read at the value nearest our mean that its printed digits "
    "allow (± half a unit of the last; none for a figure given as 'about'). "
    f"{verdicts.CONSISTENT.capitalize()} from p = {verdicts.CONSISTENT_P}, "
    f"{verdicts.BORDERLINE} from {verdicts.BORDERLINE_P}, {verdicts.NOT_CONSISTENT} below: "
    "outside our 95% prediction interval for one run, mean ± t·sd·√(1 + 1/n). One run of "
    "ours gives no interval."
)


@dataclass(frozen=True)
class Original:
    """One figure as an original project printed it (:meth:`parse`).

    ``value`` is in our units (a fraction for a percentage); ``precision`` is half a unit of
    its last printed digit in those units, or None where the source gives it approximately.
    """

    text: str  # as printed: "96.08%", "0.6313", "about 92.5%"
    value: float
    precision: float | None
    job: str  # the job that declares it (an improved job is compared with its original's)
    decimals: int  # printed decimals, in the printed units
    percent: bool

    @classmethod
    def parse(cls, text: str, job: str) -> Original:
        digits = text.removeprefix(APPROXIMATE)
        percent = digits.endswith("%")
        number = Decimal(digits.removesuffix("%"))
        exponent = number.as_tuple().exponent
        scale = Decimal(100 if percent else 1)
        half_unit = float(Decimal(5).scaleb(exponent - 1) / scale)
        approximate = text.startswith(APPROXIMATE)
        value = float(number / scale)
        return cls(text, value, None if approximate else half_unit, job, -exponent, percent)

    def finer(self, x: float) -> str:
        """``x`` to one decimal more than the printed figure (and its percent sign): an
        interval's end, which must not round onto the figure it is compared with."""
        places = self.decimals + 1
        return f"{100 * x:.{places}f}%" if self.percent else f"{x:.{places}f}"

    def precision_text(self) -> str:
        """``±0.00005``, ``±0.005 pt``: the printed precision in the printed units."""
        if self.precision is None:
            return ""
        if self.percent:
            return f"±{100 * self.precision:.{self.decimals + 1}f} pt"
        return f"±{self.precision:.{self.decimals + 1}f}"


def original(job: str, metric: str, cell: str = "") -> Original | None:
    """The original figure for ``metric`` of ``job`` (or of the original job it improves on),
    or None when the original reported no such figure."""
    from mnist_suite.jobs import all_jobs

    jobs = all_jobs()
    entry = jobs.get(job)
    if entry is None:
        return None
    names = [job]
    # A reconstruction job in other units (ae in pixels) is compared with PCA, not the original.
    if entry.improves_on and entry.family == "classifier":
        names.append(entry.improves_on)
    for name in names:
        text = jobs[name].printed(metric, cell) if name in jobs else None
        if text is not None:
            return Original.parse(text, name)
    return None


def original_figure(job: str, metric: str, cell: str = "") -> tuple[float | None, str]:
    """(value, source_job) of :func:`original`; (None, "") without a figure."""
    found = original(job, metric, cell)
    return (found.value, found.job) if found else (None, "")


def predictive_p(
    original: float, n: int, mean: float, sd: float | None, precision: float | None = None
) -> float | None:
    """Two-sided predictive p-value of one run at ``original`` against ``n`` runs of ours.

    ``P(|T| >= |original - mean| / (sd · √(1 + 1/n)))`` for T ~ t(n − 1), with ``original``
    moved up to ``precision`` towards our mean (it may be anything its printed digits allow).
    Identical runs (sd 0) give 1 when the original is within its precision of them, else 0.
    None for n < 2: one run has no spread.
    """
    if n < 2 or sd is None:
        return None
    gap = max(abs(original - mean) - (precision or 0.0), 0.0)
    if sd == 0 or gap == 0:
        return 1.0 if gap == 0 else 0.0
    from scipy import stats

    return float(2 * stats.t.sf(gap / (sd * math.sqrt(1 + 1 / n)), n - 1))


@dataclass(frozen=True)
class Judgement:
    """An original's figure against our runs: the verdict's word, its p-value and the words
    the report prints (:attr:`text`)."""

    verdict: str  # verdicts.CONSISTENT / BORDERLINE / NOT_CONSISTENT, or "n=1: no interval"
    p: float | None = None
    reason: str = ""  # why a row is borderline or not consistent: where the original lies

    @property
    def text(self) -> str:
        """``not consistent: original 0.6313 above our 95% prediction interval [0.61660,
        0.62432]``; a consistent row is the word alone."""
        return f"{self.verdict}: {self.reason}" if self.reason else self.verdict

    @property
    def short(self) -> str:
        """The word and the p-value (``borderline (p=0.050)``): the README's cell."""
        if self.p is None:
            return self.verdict
        p = verdicts.p_text(self.p)
        return f"{self.verdict} (p{'' if p.startswith('<') else '='}{p})"


def judge(found: Original, s: Summary) -> Judgement:
    """Is the original's one figure consistent with our runs (a
    :class:`~mnist_suite.stats.Summary` over seeds)?"""
    p = predictive_p(found.value, s.n, s.mean, s.sd, found.precision)
    if p is None:
        return Judgement(f"n={s.n}: {verdicts.NO_INTERVAL}")
    # The intervals at the verdict's lines: p < 0.05 is outside the 95% one.
    low, high = prediction_interval(s.mean, s.sd, s.n, 1 - verdicts.BORDERLINE_P)
    verdict = verdicts.original(p)
    if verdict == verdicts.CONSISTENT:
        return Judgement(verdict, p)
    shown = found.finer
    side = "above" if found.value > high else "below" if found.value < low else "inside"
    reason = (
        f"original {found.text.removeprefix(APPROXIMATE)} {side} our "
        f"{1 - verdicts.BORDERLINE_P:.0%} prediction interval [{shown(low)}, {shown(high)}]"
    )
    if verdict == verdicts.BORDERLINE and side == "inside":
        low90, high90 = prediction_interval(s.mean, s.sd, s.n, 1 - verdicts.CONSISTENT_P)
        reason += f" but outside the {1 - verdicts.CONSISTENT_P:.0%} one"
        reason += f" [{shown(low90)}, {shown(high90)}]"
    elif verdict == verdicts.BORDERLINE:
        reason += f" by less than its printed precision {found.precision_text()}"
    return Judgement(verdict, p, reason)
