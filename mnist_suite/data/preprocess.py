"""Preprocessing shared by every job: scaling, the original's z-score, one-hot, splits, batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mnist_suite.errors import ConfigError


def to_unit(x: np.ndarray, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """uint8 images (n, 28, 28) -> pixels / 255 of shape (n, 784)."""
    # Explicit width: reshape(0, -1) of an empty selection (no dev split) cannot infer it.
    width = int(np.prod(x.shape[1:]))
    return x.reshape(len(x), width).astype(dtype) / np.asarray(255, dtype=dtype)


def scalar_zscore(
    x_train: np.ndarray, *others: np.ndarray
) -> tuple[float, float, list[np.ndarray]]:
    """The original's normalisation: one scalar mean and std over every training pixel.

    Parameters
    ----------
    x_train : ndarray of shape (n, 784), float
        Unit-scaled training pixels; the statistics come from these alone.
    *others : ndarray of shape (m, 784)
        Further arrays (test, dev) normalised with the training statistics.

    Returns
    -------
    mean, std, [x_train_z, *others_z]
    """
    # float64 accumulation: a float32 sum over 47M pixels loses digits.
    mean = float(x_train.mean(dtype=np.float64))
    std = float(x_train.std(dtype=np.float64))
    dtype = x_train.dtype
    scaled = [((a - mean) / std).astype(dtype, copy=False) for a in (x_train, *others)]
    return mean, std, scaled


def one_hot(y: np.ndarray, n_classes: int = 10, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Integer labels (n,) -> one-hot (n, n_classes)."""
    out = np.zeros((len(y), n_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out


def batch_indices(
    n: int,
    batch_size: int,
    rng: np.random.Generator | None,
    *,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """Yield index arrays covering ``range(n)`` in batches; shuffled when ``rng`` is given."""
    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size} must be > 0")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]
