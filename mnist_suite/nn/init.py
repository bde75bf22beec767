"""Weight initialisers for ``Linear``: the original's uniform[-0.5, 0.5), He and Glorot.

Each returns ``(W, b)`` with ``W`` of shape (fan_out, fan_in) — the original's layout — and ``b`` of
shape (fan_out,), drawn from the caller's generator so a seed fixes every weight.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnist_suite.errors import ParameterError

Initialiser = Callable[[np.random.Generator, int, int, np.dtype], tuple[np.ndarray, np.ndarray]]


def original_uniform(
    rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """The original's init: weights *and* biases uniform in [-0.5, 0.5), no fan-in scaling."""
    W = rng.uniform(-0.5, 0.5, (fan_out, fan_in)).astype(dtype)
    b = rng.uniform(-0.5, 0.5, fan_out).astype(dtype)
    return W, b


def he_normal(
    rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """He et al. (2015): N(0, 2 / fan_in) keeps ReLU activations' variance constant; zero bias."""
    W = rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)
    return W.astype(dtype), np.zeros(fan_out, dtype)


def glorot_uniform(
    rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Glorot & Bengio (2010): U(±sqrt(6 / (fan_in + fan_out))), Keras's default; zero bias."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    W = rng.uniform(-limit, limit, (fan_out, fan_in))
    return W.astype(dtype), np.zeros(fan_out, dtype)


INITIALISERS: dict[str, Initialiser] = {
    "uniform": original_uniform,
    "he": he_normal,
    "glorot": glorot_uniform,
}


def get_initialiser(name: str) -> Initialiser:
    """The initialiser called ``name``; ParameterError naming the valid ones otherwise."""
    if name not in INITIALISERS:
        raise ParameterError(
            f"unknown initialiser {name!r} (expected one of {', '.join(INITIALISERS)})"
        )
    return INITIALISERS[name]
