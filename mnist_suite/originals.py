"""The original projects' single figures against our runs: consistent or not.

An original project's figure is one unseeded run. Judging it against the interval of *our
mean* would call it "outside" more often the more seeds we run; the question is whether one
more run of ours could have given it: the 95% prediction interval for one run,
``mean ± t(n-1) · sd · √(1 + 1/n)`` (:func:`mnist_suite.stats.prediction_interval`). Where
``docs/original-projects.md`` documents a tolerance for a figure (the original printed it
rounded, or from an unseeded run whose spread it never measured), a figure within that tolerance
of our mean is consistent too.
"""

from __future__ import annotations

from mnist_suite import verdicts
from mnist_suite.stats import CONFIDENCE, prediction_interval

SOURCE = "docs/original-projects.md"
# The tolerances docs/original-projects.md gives the originals' figures: about ±1 point of
# accuracy, ±0.03 of final MSE (z-scored pixels).
TOLERANCES = {"accuracy": 0.01, "mse": 0.03}


def tolerance(metric: str) -> float:
    """The documented tolerance of an original's figure of ``metric`` (0: none documented)."""
    return next((t for word, t in TOLERANCES.items() if word in metric), 0.0)


def original_figure(job: str, metric: str, cell: str = "") -> tuple[float | None, str]:
    """The original figure for ``metric`` of ``job`` (or of the original job it improves on).

    The figures are declared by the jobs themselves (``Job.original_figures``, ``Job.improves_on``).

    Returns
    -------
    (value, source_job) : value is None when the original reported no such figure.
    """
    from mnist_suite.jobs import all_jobs

    jobs = all_jobs()
    entry = jobs.get(job)
    if entry is None:
        return None, ""
    names = [job]
    # A reconstruction job in other units (ae in pixels) is compared with PCA, not the original.
    if entry.improves_on and entry.family == "classifier":
        names.append(entry.improves_on)
    for name in names:
        value = jobs[name].original_figure(metric, cell) if name in jobs else None
        if value is not None:
            return value, name
    return None, ""


def consistency(
    original: float | None,
    n: int,
    mean: float | None,
    sd: float | None,
    metric: str,
    confidence: float = CONFIDENCE,
) -> dict:
    """``{"verdict", "low", "high", "tolerance", "by_tolerance"}``: is the original's one
    figure consistent with our runs? ``verdict`` is ``consistent`` / ``not consistent``, or None
    (no original figure, or fewer than two runs of ours: no interval); ``by_tolerance``: outside
    the prediction interval, consistent by the documented tolerance alone."""
    out = {"verdict": None, "low": None, "high": None, "tolerance": tolerance(metric)}
    out["by_tolerance"] = False
    if original is None or mean is None:
        return out
    interval = prediction_interval(mean, sd, n, confidence)
    if interval is None:
        return out
    low, high = interval
    in_interval = low <= original <= high
    tolerated = not in_interval and abs(original - mean) <= out["tolerance"]
    verdict = verdicts.CONSISTENT if in_interval or tolerated else verdicts.NOT_CONSISTENT
    return out | {"verdict": verdict, "low": low, "high": high, "by_tolerance": tolerated}


def verdict_text(original: float | None, s, metric: str) -> str:
    """The report's words for :func:`consistency` of ``original`` with a
    :class:`~mnist_suite.stats.Summary` ``s``: ``consistent``, ``not consistent``,
    ``n=1: no interval``, or "" without an original figure."""
    if original is None:
        return ""
    if s.n >= 1 and s.sd == 0 and abs(s.mean - original) < 5e-5:
        return verdicts.CONSISTENT  # deterministic (PCA) and equal to the printed digits
    judged = consistency(original, s.n, s.mean, s.sd, metric)
    if judged["by_tolerance"]:
        return f"{verdicts.CONSISTENT} (within the documented ±{judged['tolerance']:g})"
    return judged["verdict"] or f"n={s.n}: no interval"
