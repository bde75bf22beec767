"""MNIST, verified, and the preprocessing every job shares."""

from mnist_suite.data.mnist import Mnist, cache_dir, load_mnist
from mnist_suite.data.preprocess import (
    batch_indices,
    one_hot,
    scalar_zscore,
    to_unit,
)
from mnist_suite.data.split import dev_split, split_arrays

__all__ = [
    "Mnist",
    "batch_indices",
    "cache_dir",
    "dev_split",
    "load_mnist",
    "one_hot",
    "scalar_zscore",
    "split_arrays",
    "to_unit",
]
