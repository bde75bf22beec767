"""The words of every verdict the suite states, one vocabulary per kind of question.

The terminal, the report and JSON say a verdict with these words and no others.

- A comparison (``compare``, the accuracy gate, ``bench_compare``): :data:`BETTER`,
  :data:`WORSE`, :data:`SAME` (no detectable change), :data:`UNSTABLE` (too noisy for a
  verdict), :data:`FEW` (one side has fewer than two seeds), and for a row that cannot be
  compared at all: :data:`MISSING`, :data:`DIVERGED`, :data:`OUTDATED`,
  :data:`DEFINITION_ERROR`.
- A benchmark target: :data:`MET`, :data:`MISSED`, :data:`UNSTABLE`.
- An original project's single figure against our runs: :data:`CONSISTENT`,
  :data:`NOT_CONSISTENT`.

Standard library only: ``bench/compare.py`` and ``bench/conftest.py`` use it too.
"""

from __future__ import annotations

BETTER, WORSE, SAME, UNSTABLE, FEW = (
    "better",
    "worse",
    "no detectable change",
    "unstable",
    "too few seeds",
)
MISSING, DIVERGED, OUTDATED = "missing", "diverged", "outdated"
DEFINITION_ERROR = "definition error"
# Rows of a comparison that fail a gate (``--fail-on worse``): a regression, and every row the
# gate cannot see through.
FAILING = (WORSE, MISSING, DIVERGED, OUTDATED, DEFINITION_ERROR)

MET, MISSED = "met", "missed"
CONSISTENT, NOT_CONSISTENT = "consistent", "not consistent"


def target(ratio: dict | None, value: float | None, goal: float) -> str | None:
    """A benchmark target's verdict from the ratio's quartiles over rounds.

    ``met`` when the lower quartile reaches the goal, ``missed`` when the upper quartile is
    below it, ``unstable`` when they straddle it; a bare median (no quartiles) is met or missed
    by itself. None without a value.
    """
    if value is None:
        return None
    if ratio is None:
        return MET if value >= goal else MISSED
    if ratio["q1"] >= goal:
        return MET
    if ratio["q3"] < goal:
        return MISSED
    return UNSTABLE
