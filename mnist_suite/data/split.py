"""The dev split: one stratified, seeded hold-out of the training set, shared by every job.

Every run of a seed that holds out the same number of images from the same training images
gets the same dev set, whatever the job: the split is drawn from the original's ``dev`` stream
only (``mnist_suite.seeding``), so it never depends on a job's other random draws.
"""

from __future__ import annotations

import numpy as np

from mnist_suite.errors import ConfigError
from mnist_suite.seeding import int_seed


def dev_split(y: np.ndarray, n_dev: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out of ``n_dev`` examples, driven by the ``dev`` stream of ``seed``.

    Parameters
    ----------
    y : ndarray of shape (n,), int
        Labels of the training images the split is drawn from.
    n_dev : int
        Examples held out; 0 gives an empty dev set (the faithful jobs' choice).
    seed : int
        The run's seed.

    Returns
    -------
    (train_idx, dev_idx) : sorted int64 index arrays into ``y``, disjoint, covering
    ``range(n)``; each class's share of ``dev_idx`` matches its share of ``y`` to within one
    example (scikit-learn's ``train_test_split(stratify=y)``).
    """
    n = len(y)
    if not 0 <= n_dev < n:
        raise ConfigError(f"n_dev={n_dev} must be in [0, {n})")
    everything = np.arange(n, dtype=np.int64)
    if n_dev == 0:
        return everything, everything[:0]
    from sklearn.model_selection import train_test_split

    train_idx, dev_idx = train_test_split(
        everything, test_size=n_dev, stratify=y, random_state=int_seed(seed, "dev")
    )
    return np.sort(train_idx), np.sort(dev_idx)


def split_arrays(
    x: np.ndarray, y: np.ndarray, n_dev: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x`` (n, ...) and ``y`` (n,) cut by :func:`dev_split`: (x_train, y_train, x_dev, y_dev)."""
    train_idx, dev_idx = dev_split(y, n_dev, seed)
    return x[train_idx], y[train_idx], x[dev_idx], y[dev_idx]
