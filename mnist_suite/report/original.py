"""The original's reported figures, for the "original vs ours" columns of the report.

Source: ``docs/original-projects.md`` (the original code and notebooks, read cell by
cell, outputs included). The figures a job reproduces live in its declaration
(``mnist_suite.jobs``: ``Job.original_figures``); this module keeps the printed curves and bands.
Accuracies are fractions, losses and MSEs in the original's own units
(z-scored pixels for the autoencoders). Whether an original's figure is consistent with ours is
:mod:`mnist_suite.originals`' question.
"""

from __future__ import annotations

from mnist_suite.originals import SOURCE

__all__ = ["ORIGINAL_CURVES", "SOURCE"]

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
