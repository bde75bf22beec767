"""What each metric means, in one table: its good direction, its range, how a value and a
difference print, and how ``compare`` judges it (minimum effect and equivalence margin).

Every reader takes a metric's meaning from here (:func:`meaning`): the record checks
(:mod:`mnist_suite.records`), compare's ranges and verdicts (:data:`RULES`), and the figures
``runs``, ``history``, ``bisect`` and the report print. A metric the table does not hold (a
plugin's, ``dev_accuracy``, ``eval_seconds``) gets its meaning from :func:`by_pattern`, the one
place a meaning is read from a name.

An original project's figure carries its own tolerance, half a unit of its last printed digit
(:mod:`mnist_suite.originals`), and the jobs declare which metric each figure is of: nothing
here widens or narrows it.

Standard library only: records and the benchmark code read it without NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

# Figures beyond this are no run's (accuracies, losses, seconds): squares stay finite below it.
LARGEST = 1e12
MAX_SECONDS = 1e9  # any duration (30 years)
PERCENT, SECONDS = "%", "s"


@dataclass(frozen=True)
class Rule:
    """How a metric is judged: its good direction, its minimum effect (the smallest change
    that counts as better or worse) and its equivalence margin (the largest change that counts
    as none: ``equivalent``), each absolute or relative to the base mean."""

    higher_is_better: bool
    absolute: float = 0.0  # minimum |difference| in the metric's units
    relative: float = 0.0  # ... or as a share of the baseline mean, whichever is larger
    # The margin likewise; None for both: the minimum effect's.
    margin_absolute: float | None = None
    margin_relative: float | None = None

    def min_effect(self, base_mean: float) -> float:
        return max(self.absolute, self.relative * abs(base_mean))

    def margin(self, base_mean: float) -> float:
        if self.margin_absolute is None and self.margin_relative is None:
            return self.min_effect(base_mean)
        return max(self.margin_absolute or 0.0, (self.margin_relative or 0.0) * abs(base_mean))

    def describe(self) -> str:
        return _size(self.absolute, self.relative)

    def describe_margin(self) -> str:
        if self.margin_absolute is None and self.margin_relative is None:
            return self.describe()
        return _size(self.margin_absolute or 0.0, self.margin_relative or 0.0)


def _size(absolute: float, relative: float) -> str:
    return f"{100 * relative:g}%" if relative else f"{absolute:g}"


@dataclass(frozen=True)
class Meaning:
    """What one metric is: its good direction (None: neither, a count), the range every value
    lies in, its unit as shown (``%``: a fraction in [0, 1] shown ×100, its differences in
    points; ``s``: seconds) and, when ``compare`` judges it, its :class:`Rule` (:attr:`rule`).

    ``on_read``: a value out of range makes the run's record damaged (the run ``corrupt``, run
    again). When False the run stays ``done`` with its other figures, and the value is refused
    only where figures are summarised (compare, history): a job's own impossible figure, which
    running it again would write again.
    """

    name: str
    higher_is_better: bool | None = None
    low: float = -LARGEST
    high: float = LARGEST
    unit: str = ""
    rule: Rule | None = None  # None: compare gives the metric no row
    on_read: bool = True

    def __post_init__(self) -> None:
        if self.rule is not None and self.rule.higher_is_better != self.higher_is_better:
            raise ValueError(f"{self.name}: its rule's direction is not the metric's")

    @property
    def percent(self) -> bool:
        return self.unit == PERCENT

    def in_range(self, value: float) -> bool:
        return self.low <= value <= self.high

    def range_text(self) -> str:
        return f"[{self.low:g}, {self.high:g}]"

    def text(self, value: float | None) -> str:
        """A value as text: a fraction in percent, others to 4 significant digits; "-" if
        None."""
        if value is None:
            return "-"
        return f"{100 * value:.2f}%" if self.percent else f"{value:.4g}"

    def interval_text(self, mean: float | None, half: float | None) -> str:
        """``mean ± half`` as text (fractions in percent)."""
        if mean is None:
            return "-"
        if half is None:
            return self.text(mean)
        if self.percent:
            return f"{100 * mean:.2f} ± {100 * half:.2f}%"
        return f"{mean:.4g} ± {half:.2g}"

    def difference_text(
        self, diff: float, low: float | None = None, high: float | None = None
    ) -> str:
        """A difference of two values (``+0.12 pt``; fractions in points), with its interval
        ``[low, high]`` when given."""
        scale, unit = (100, " pt") if self.percent else (1, "")
        text = f"{scale * diff:+.3g}{unit}"
        if low is not None:
            text += f" [{scale * low:+.3g}, {scale * high:+.3g}]"
        return text

    def axis_label(self) -> str:
        """The metric's name with the unit its values are drawn in: ``test_accuracy (%)``."""
        return f"{self.name} ({self.unit})" if self.unit else self.name


# Every metric the suite's own jobs record and compare judges, and the clocks. A rule's minimum
# effect (why these): 0.1 point of test accuracy (the last digit the original projects printed,
# and about a third of the quick profile's seed spread); 3% relative MSE or loss (about the seed
# spread of the autoencoders); 10% of the training time. Each equivalence margin is the same
# size: a change too small to count as better or worse is one "equivalent" allows.
METRICS: dict[str, Meaning] = {
    m.name: m
    for m in (
        Meaning("test_accuracy", True, 0.0, 1.0, PERCENT, Rule(True, absolute=0.001)),
        Meaning("test_mse", False, 0.0, rule=Rule(False, relative=0.03), on_read=False),
        Meaning("test_mse_pixels", False, 0.0, rule=Rule(False, relative=0.03), on_read=False),
        Meaning("final_train_loss", False, rule=Rule(False, relative=0.03)),
        # The training clock without one-time process warm-up: speed verdicts use it.
        Meaning("train_seconds", False, 0.0, MAX_SECONDS, SECONDS, Rule(False, relative=0.10)),
        Meaning("wall_seconds", False, 0.0, MAX_SECONDS, SECONDS),
    )
}


def by_pattern(name: str) -> Meaning:
    """The meaning of a metric :data:`METRICS` does not hold, from the words of its name.

    Why a name may say it: a damaged record of a metric no table names (a plugin's,
    ``dev_accuracy``, ``eval_seconds``, ``noisy_mse_pixels``, ``n_train``) must still be caught
    out of range, and its value printed as its kind prints; the suite's names are built from
    these words. Never a rule: compare judges only a metric whose minimum effect is chosen.
    """
    if "accuracy" in name:
        return Meaning(name, True, 0.0, 1.0, PERCENT)
    if name.endswith("seconds"):
        return Meaning(name, False, 0.0, MAX_SECONDS, SECONDS)
    if "mse" in name:
        return Meaning(name, False, 0.0, on_read=False)
    if "loss" in name:
        return Meaning(name, False)
    if name.startswith("n_"):  # a count
        return Meaning(name, None, 0.0, on_read=False)
    return Meaning(name)


def meaning(name: str) -> Meaning:
    """What ``name`` means: its entry in :data:`METRICS`, else :func:`by_pattern`'s."""
    found = METRICS.get(name)
    return found if found is not None else by_pattern(name)


class _Rules(Mapping[str, Rule]):
    """Each judged metric's :class:`Rule`, read from :data:`METRICS` at every use: the table
    stays the one place a rule is written (a tool or test that changes it changes every
    verdict)."""

    def __getitem__(self, name: str) -> Rule:
        rule = METRICS[name].rule if name in METRICS else None
        if rule is None:
            raise KeyError(name)
        return rule

    def __iter__(self) -> Iterator[str]:
        return (name for name, m in METRICS.items() if m.rule is not None)

    def __len__(self) -> int:
        return sum(m.rule is not None for m in METRICS.values())

    def __or__(self, other: Mapping[str, Rule]) -> dict[str, Rule]:
        return dict(self) | dict(other)

    def __ror__(self, other: Mapping[str, Rule]) -> dict[str, Rule]:
        return dict(other) | dict(self)

    def __repr__(self) -> str:
        return repr(dict(self))


# Every metric compare judges, with its direction, minimum effect and equivalence margin.
RULES: Mapping[str, Rule] = _Rules()
