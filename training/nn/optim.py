"""SGD with momentum, Nesterov and weight decay; learning-rate schedules (constant, step, cosine,
each with optional linear warm-up).

The seed's text promised learning-rate scheduling; its code used a constant rate. Here a
schedule is a plain function of the global step, so a run's rates are reproducible and logged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from training.errors import ConfigError

SCHEDULES = ("constant", "step", "cosine")


class SGD:
    """Stochastic gradient descent, updating parameter arrays in place.

    ``v = momentum * v + g + weight_decay * w``; the step is ``v`` (heavy ball) or
    ``g + weight_decay * w + momentum * v`` (Nesterov), scaled by the learning rate.
    Weight decay applies to matrices only (ndim >= 2): decaying biases only costs accuracy.

    Parameters
    ----------
    params, grads : list of ndarray
        Parameters and the gradient buffers the layers fill, in the same order.
    momentum : float
        In [0, 1); 0 is plain SGD (the seed's).
    nesterov : bool
        Look-ahead momentum; needs momentum > 0.
    weight_decay : float
        L2 coefficient added to the gradient (>= 0).
    """

    def __init__(
        self,
        params: list[np.ndarray],
        grads: list[np.ndarray],
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        if len(params) != len(grads):
            raise ValueError(f"SGD: {len(params)} parameters but {len(grads)} gradients")
        if not 0 <= momentum < 1:
            raise ConfigError(f"momentum={momentum} must be in [0, 1)")
        if nesterov and momentum == 0:
            raise ConfigError("nesterov=true needs momentum > 0")
        if weight_decay < 0:
            raise ConfigError(f"weight_decay={weight_decay} must be >= 0")
        self.params, self.grads = params, grads
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.velocity = [np.zeros_like(p) for p in params] if momentum else []
        self._scratch = [np.empty_like(p) for p in params]

    def step(self, lr: float) -> None:
        """Apply one update with learning rate ``lr`` (> 0) from the current gradients."""
        if not lr > 0:
            raise ConfigError(f"lr={lr} must be > 0")
        for i, (w, g, tmp) in enumerate(zip(self.params, self.grads, self._scratch, strict=True)):
            np.copyto(tmp, g)  # the layers own ``g``; work on a copy
            if self.weight_decay and w.ndim >= 2:
                tmp += np.asarray(self.weight_decay, w.dtype) * w
            if self.momentum:
                v = self.velocity[i]
                v *= np.asarray(self.momentum, w.dtype)
                v += tmp
                if self.nesterov:
                    tmp += np.asarray(self.momentum, w.dtype) * v
                else:
                    np.copyto(tmp, v)
            tmp *= np.asarray(lr, w.dtype)
            w -= tmp


def make_schedule(
    name: str,
    lr: float,
    total_steps: int,
    *,
    warmup_steps: int = 0,
    step_every: int = 1,
    gamma: float = 0.1,
    final_fraction: float = 0.0,
) -> Callable[[int], float]:
    """A learning rate for each global step ``0 .. total_steps - 1``.

    Parameters
    ----------
    name : {"constant", "step", "cosine"}
        ``step`` multiplies by ``gamma`` every ``step_every`` steps; ``cosine`` anneals from
        ``lr`` to ``final_fraction * lr`` over the steps after warm-up.
    lr : float
        Peak rate (> 0).
    total_steps : int
        Length of the run (> 0).
    warmup_steps : int
        Linear ramp from ``lr / warmup_steps`` to ``lr`` over the first steps (0 = none).

    Raises
    ------
    ConfigError
        Unknown name or out-of-range argument, before any training.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r} (expected one of {', '.join(SCHEDULES)})")
    if not lr > 0:
        raise ConfigError(f"lr={lr} must be > 0")
    if total_steps <= 0:
        raise ConfigError(f"total_steps={total_steps} must be > 0")
    if not 0 <= warmup_steps < total_steps:
        raise ConfigError(f"warmup_steps={warmup_steps} must be in [0, {total_steps})")
    if name == "step" and (step_every <= 0 or not 0 < gamma <= 1):
        raise ConfigError(f"step schedule: step_every={step_every} > 0, gamma={gamma} in (0, 1]")
    if not 0 <= final_fraction <= 1:
        raise ConfigError(f"final_fraction={final_fraction} must be in [0, 1]")
    decay_steps = total_steps - warmup_steps

    def rate(step: int) -> float:
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        t = step - warmup_steps
        if name == "step":
            return lr * gamma ** (t // step_every)
        if name == "cosine":
            cos = 0.5 * (1 + math.cos(math.pi * min(t, decay_steps) / decay_steps))
            return lr * (final_fraction + (1 - final_fraction) * cos)
        return lr

    return rate
