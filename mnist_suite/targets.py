"""Time to target (MLPerf / AlgoPerf style): wall seconds to the first evaluation at a target.

The clock is the run's own (``Run.start``, set before the data is read), and nothing is taken
off it: evaluations, logging and data loading all count. A target not reached is ``None``
(``reached`` False), never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

TARGETS = (0.97, 0.98, 0.99)  # dev accuracy; AlgoPerf's MNIST target is 0.97
METRIC = "dev_accuracy"
# History rows that are not evaluations during training: the targets' own marks, and the final
# scoring, which reports again the dev accuracy of weights evaluated before.
NOT_EVALUATIONS = ("target", "eval")


def target_key(target: float) -> str:
    """The JSON key of a target: ``0.97`` -> ``"0.97"``."""
    return f"{target:g}"


class TargetClock:
    """Watches a run's evaluations and remembers when each target was first reached.

    Parameters
    ----------
    targets : sequence of float
        Accuracy thresholds (reached when the metric is >= the threshold).
    """

    def __init__(self, targets: Sequence[float] = TARGETS):
        self.targets = tuple(sorted(targets))
        self.seconds: dict[float, float | None] = dict.fromkeys(self.targets)
        self.steps: dict[float, int | None] = dict.fromkeys(self.targets)
        self.evaluations = 0

    def update(self, value: float, seconds: float, step: int) -> list[float]:
        """Record one evaluation; returns the targets it reached for the first time."""
        self.evaluations += 1
        new = [t for t in self.targets if self.seconds[t] is None and value >= t]
        for t in new:
            self.seconds[t], self.steps[t] = seconds, step
        return new

    def summary(self) -> dict:
        """JSON-ready: ``seconds`` / ``step`` per target (None if not reached), ``reached``."""
        return {
            "metric": METRIC,
            "evaluations": self.evaluations,
            "seconds": {target_key(t): self.seconds[t] for t in self.targets},
            "step": {target_key(t): self.steps[t] for t in self.targets},
            "reached": {target_key(t): self.seconds[t] is not None for t in self.targets},
        }


def from_history(rows: Iterable[dict], targets: Sequence[float] = TARGETS) -> dict:
    """The same summary rebuilt from ``history.jsonl`` rows (those that carry the metric)."""
    clock = TargetClock(targets)
    for row in rows:
        value = row.get(METRIC)
        if isinstance(value, int | float) and row.get("kind") not in NOT_EVALUATIONS:
            clock.update(float(value), float(row["time"]), int(row["step"]))
    return clock.summary()
