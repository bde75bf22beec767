"""A small neural-network library in NumPy only (importing it never loads TensorFlow).

Layers carry ``forward`` and ``backward`` side by side; ``SGD`` updates their parameters in
place (``WeightAverage`` keeps a moving average of them); ``Distortion`` augments image batches;
models save to ``.npz`` with their architecture.
"""

from training.nn.augment import Distortion
from training.nn.average import WeightAverage
from training.nn.init import INITIALISERS, get_initialiser
from training.nn.io import load_model, model_arrays, save_model
from training.nn.layers import (
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
from training.nn.optim import SCHEDULES, SGD, make_schedule

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
