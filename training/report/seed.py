"""The seed's reported figures, for the "seed vs ours" columns of the report.

Source: ``shared/seed/ORIGINAL-FACTS.md`` (the seed's original code and notebooks, read cell by
cell, outputs included). Accuracies are fractions, losses and MSEs in the seed's own units
(z-scored pixels for the autoencoders). Nothing in the originals was seeded, so the seed's
figures carry a tolerance band: about ±1 point of accuracy, ±0.03 of final MSE.
"""

from __future__ import annotations

SOURCE = "shared/seed/ORIGINAL-FACTS.md"
ACCURACY_BAND = 0.01
MSE_BAND = 0.03

# job -> metric -> the seed's figure. Batch jobs key by cell label as "<cell>:<metric>".
SEED_FIGURES: dict[str, dict[str, float]] = {
    # §1 scratch MLP: the saved weights on the standard 10k MNIST test set.
    "mlp-seed": {"test_accuracy": 0.925},
    # §2 custom SGD loop: lr 0.01, batch 32, 5 epochs, sum reduction.
    "sgd-seed": {"test_accuracy": 0.9608, "test_loss": 0.1726, "final_train_loss": 0.0870},
    # §2 one-epoch learning-rate sweep at batch 32: the full-training-set mean loss after it.
    "sgd-lr-sweep": {
        "lr0.1:final_train_loss": 2.3107,  # diverged: stuck near ln 10
        "lr0.01:final_train_loss": 0.1689,
        "lr0.001:final_train_loss": 0.2568,
    },
    # §3 PCA(2) on scalar z-scored training images.
    "pca": {"explained_variance_ratio_1": 0.09704, "explained_variance_ratio_2": 0.07095},
    # §3 autoencoders: final validation (= test set) MSE in z-score units, 10 epochs SGD lr 0.1.
    "ae-seed": {"seed-2d:test_mse": 0.7537, "wide:test_mse": 0.5695, "denoising:test_mse": 0.6313},
    # §3 the notebook's NumPy linear softmax classifier, one epoch of per-sample SGD.
    "softmax-seed": {"test_accuracy": 0.801, "train_accuracy": 0.803},
}

# Curves the seed printed: job -> history key -> [(epoch, value)]; epoch 0 = untrained.
SEED_CURVES: dict[str, dict[str, list[tuple[int, float]]]] = {
    # §2: full-training-set mean loss printed after each epoch of lr 0.01, batch 32.
    "sgd-seed": {
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

# Improved jobs are compared with the seed experiment they improve on.
SEED_COUNTERPART: dict[str, str] = {
    "softmax": "softmax-seed",
    "mlp": "mlp-seed",
    "sgd-grid": "sgd-seed",
}


def seed_figure(job: str, metric: str, cell: str = "") -> tuple[float | None, str]:
    """The seed's figure for ``metric`` of ``job`` (or of the seed job it improves on).

    Returns
    -------
    (value, source_job) : value is None when the seed reported no such figure.
    """
    for name in (job, SEED_COUNTERPART.get(job, "")):
        figures = SEED_FIGURES.get(name, {})
        key = f"{cell}:{metric}" if cell else metric
        if key in figures:
            return figures[key], name
        if metric in figures:
            return figures[metric], name
    return None, ""
