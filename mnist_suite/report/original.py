"""The original's reported figures, for the "original vs ours" columns of the report.

Source: ``docs/original-projects.md`` (the original code and notebooks, read cell by
cell, outputs included). The figures a job reproduces live in its declaration
(``mnist_suite.jobs``: ``Job.original_figures``); this module keeps the printed curves and bands.
Accuracies are fractions, losses and MSEs in the original's own units
(z-scored pixels for the autoencoders). Nothing in the originals was seeded, so the original's
figures carry a tolerance band: about ±1 point of accuracy, ±0.03 of final MSE.
"""

from __future__ import annotations

SOURCE = "docs/original-projects.md"
ACCURACY_BAND = 0.01
MSE_BAND = 0.03

# Curves the original printed: job -> history key -> [(epoch, value)]; epoch 0 = untrained.
ORIGINAL_CURVES: dict[str, dict[str, list[tuple[int, float]]]] = {
    # §2: full-training-set mean loss printed after each epoch of lr 0.01, batch 32.
    "sgd-original": {
        "train_loss": [
            (0, 2.3235),
            (1, 0.1707),
            (2, 0.1352),
            (3, 0.1539),
            (4, 0.0898),
            (5, 0.0870),
        ],
    },
}


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
