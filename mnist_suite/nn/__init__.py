"""A small neural-network library in NumPy only (importing it never loads TensorFlow).

Layers carry ``forward`` and ``backward`` side by side; ``SGD`` updates their parameters in
place (``WeightAverage`` keeps a moving average of them); ``Distortion`` augments image batches;
models save to ``.npz`` with their architecture.
"""

from mnist_suite.nn.augment import Distortion
from mnist_suite.nn.average import WeightAverage
from mnist_suite.nn.init import INITIALISERS, get_initialiser
from mnist_suite.nn.io import load_model, model_arrays, save_model
from mnist_suite.nn.layers import (
    Dropout,
    Layer,
    Linear,
    LogSoftmax,
    NLLLoss,
    ReLU,
    Sequential,
    log_softmax,
    mlp,
)
from mnist_suite.nn.optim import SCHEDULES, SGD, make_schedule

__all__ = [
    "INITIALISERS",
    "SCHEDULES",
    "SGD",
    "Distortion",
    "Dropout",
    "Layer",
    "Linear",
    "LogSoftmax",
    "NLLLoss",
    "ReLU",
    "Sequential",
    "WeightAverage",
    "get_initialiser",
    "load_model",
    "log_softmax",
    "make_schedule",
    "mlp",
    "model_arrays",
    "save_model",
]
