"""The words of every verdict the suite states, one vocabulary per kind of question.

The terminal, the report and JSON say a verdict with these words and no others.

- A comparison (``compare``, the accuracy gate, ``bench_compare``): :data:`BETTER`,
  :data:`WORSE`, :data:`EQUIVALENT` (equal within the metric's margin), :data:`INCONCLUSIVE`
  (neither shown: more seeds would tell), :data:`IDENTICAL` (the same seeds with the same
  figures on both sides), :data:`NOT_DETECTED` (a benchmark ratio within its quartiles' noise),
  :data:`UNSTABLE` (too noisy for a verdict), :data:`FEW` (a side has fewer than two seeds, or
  two seeds with no spread), and for a row that cannot be compared at all: :data:`MISSING`,
  :data:`DIVERGED`, :data:`OUTDATED`, :data:`DEFINITION_ERROR`.
- A benchmark target: :data:`MET`, :data:`MISSED`, :data:`UNSTABLE`.
- An original project's single figure against our runs, by its predictive p-value
  (:func:`original`): :data:`CONSISTENT`, :data:`BORDERLINE`, :data:`NOT_CONSISTENT`, and
  :data:`NO_INTERVAL` when one run of ours gives no spread to judge by.

Standard library only: ``bench/compare.py`` and ``bench/conftest.py`` use it too.
"""

from __future__ import annotations

BETTER, WORSE, UNSTABLE, FEW = "better", "worse", "unstable", "too few seeds"
EQUIVALENT, INCONCLUSIVE = "equivalent", "inconclusive"
# A benchmark ratio's median inside the band its quartiles and tolerance leave
# (mnist_suite.benchcompare.verdict): nothing seen, but no bound on the change either, so not
# "equivalent".
NOT_DETECTED = "no detectable change"
IDENTICAL = "identical"
MISSING, DIVERGED, OUTDATED = "missing", "diverged", "outdated"
DEFINITION_ERROR = "definition error"
# Rows of a comparison that fail a gate (``--fail-on worse``): a regression, and every row the
# gate could not judge or see through. A gate passes only on rows it judged.
FAILING = (WORSE, FEW, UNSTABLE, MISSING, DIVERGED, OUTDATED, DEFINITION_ERROR)
# Rows shown to be no worse: a gain, no change beyond the margin, or the same figures
# (``--require equivalent`` accepts only these; ``bisect`` goes on past them).
NOT_WORSE = (BETTER, EQUIVALENT, IDENTICAL)
# Rows whose question is answered: ``compare --until-decided`` adds no seeds to them.
DECIDED = (*NOT_WORSE, WORSE)

MET, MISSED = "met", "missed"
CONSISTENT, BORDERLINE, NOT_CONSISTENT = "consistent", "borderline", "not consistent"
NO_INTERVAL = "no interval"
# The p-values that part them: below 0.05 the original's run is one ours would give less than
# once in twenty; from 0.05 to 0.1 too close to that line to call it either way.
CONSISTENT_P, BORDERLINE_P = 0.1, 0.05


def original(p: float) -> str:
    """An original's figure against our runs from its two-sided predictive p-value
    (:func:`mnist_suite.originals.predictive_p`): ``consistent`` from 0.1, ``borderline`` from
    0.05, ``not consistent`` below."""
    if p >= CONSISTENT_P:
        return CONSISTENT
    return BORDERLINE if p >= BORDERLINE_P else NOT_CONSISTENT


def p_text(p: float) -> str:
    """A p-value as the report, the terminal and the README print it: two significant digits
    (``0.050``, ``0.0015``), more where two would round it across a verdict's line (0.09996 is
    borderline, not "0.10"); ``<0.0001`` below that."""
    if p < 1e-4:
        return "<0.0001"
    digits = 2
    while original(float(f"{p:.{digits}g}")) != original(p):
        digits += 1
    return f"{p:#.{digits}g}"


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
