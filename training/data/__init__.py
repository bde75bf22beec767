"""MNIST, verified, and the preprocessing every job shares."""

from training.data.mnist import Mnist, cache_dir, load_mnist
from training.data.preprocess import (
    batch_indices,
    one_hot,
    scalar_zscore,
    to_unit,
    train_dev_split,
)

__all__ = [
    "Mnist",
    "batch_indices",
    "cache_dir",
    "load_mnist",
    "one_hot",
    "scalar_zscore",
    "to_unit",
    "train_dev_split",
]
