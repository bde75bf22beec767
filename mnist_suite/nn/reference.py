"""Straightforward loop implementations: the test oracle and the benchmark baseline.

Never used in training: they exist to show the vectorised layers compute the same thing, and
how much the vectorisation buys.
"""

from __future__ import annotations

import numpy as np


def log_softmax_backward_loop(logp: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """LogSoftmax input gradient the original's way: a Python double loop over batch × classes.

    For sample ``i`` and input ``j`` the Jacobian column is d logp[i, :] / d z[i, j] =
    e_j - softmax(z[i])[j]; its dot product with ``grad_out[i]`` is the gradient.

    Parameters
    ----------
    logp : ndarray of shape (B, C)
        The layer's output (log-probabilities).
    grad_out : ndarray of shape (B, C)
        d loss / d logp.

    Returns
    -------
    ndarray of shape (B, C)
        d loss / d z.
    """
    batch, classes = logp.shape
    grad_in = np.zeros_like(grad_out)
    for i in range(batch):
        p = np.exp(logp[i])
        for j in range(classes):
            column = -p[j] * np.ones(classes, dtype=logp.dtype)
            column[j] += 1
            grad_in[i, j] = grad_out[i] @ column
    return grad_in
