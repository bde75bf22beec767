"""An exponential moving average of a model's parameters, for evaluating smoothed weights.

SGD's last iterate jitters around the minimum it is heading to; the average of recent iterates
sits closer to it (Polyak averaging). ``decay`` sets the window: about ``1 / (1 - decay)`` steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


class WeightAverage:
    """``avg = decay * avg + (1 - decay) * w`` for every parameter, after each optimiser step.

    Parameters
    ----------
    params : list of ndarray
        The live parameters (updated in place by the optimiser); copies start the average.
    decay : float
        In [0, 1); 0 keeps just the last iterate.
    """

    def __init__(self, params: list[np.ndarray], decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"WeightAverage: decay={decay}, expected a value in [0, 1)")
        self.params, self.decay = params, decay
        self.average = [p.copy() for p in params]

    def update(self) -> None:
        """Fold the current parameters into the average (in place, no new arrays)."""
        rate = 1 - self.decay
        for avg, p in zip(self.average, self.params, strict=True):
            # avg += (1 - decay) * (p - avg): one temporary, the same arithmetic.
            avg += rate * (p - avg)

    def reset(self) -> None:
        """Restart the average from the current parameters."""
        for avg, p in zip(self.average, self.params, strict=True):
            np.copyto(avg, p)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Inside the block the model's parameters hold the average; restored on exit."""
        live = [p.copy() for p in self.params]
        for p, avg in zip(self.params, self.average, strict=True):
            np.copyto(p, avg)
        try:
            yield
        finally:
            for p, saved in zip(self.params, live, strict=True):
                np.copyto(p, saved)
