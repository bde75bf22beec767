"""Classification figures shared by every classifier job."""

from __future__ import annotations

import numpy as np


def accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of ``scores`` (n, 10) whose argmax equals ``y`` (n,)."""
    return float(np.mean(scores.argmax(axis=1) == y))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Counts (n_classes, n_classes): row = true label, column = prediction."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.int64)
