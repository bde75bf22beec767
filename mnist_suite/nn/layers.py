"""Layers with ``forward`` and ``backward`` side by side, vectorised over the batch.

Every layer maps a batch (B, ...) to a batch; ``forward`` keeps what ``backward`` needs, and
``backward(grad_out)`` stores parameter gradients in ``grads`` (same order as ``params``) and
returns the gradient with respect to the input. Shapes and dtypes are checked on entry so a
mismatch fails with the layer's name and both shapes instead of deep inside a matmul.
"""

from __future__ import annotations

import itertools

import numpy as np

from mnist_suite.nn.init import get_initialiser


def _check_2d(layer: object, x: np.ndarray, width: int | None, dtype: np.dtype | None) -> None:
    """Raise ValueError naming ``layer`` unless ``x`` is (B, width) of ``dtype``."""
    expected = f"(B, {width if width is not None else 'C'})"
    if not isinstance(x, np.ndarray) or x.ndim != 2 or (width is not None and x.shape[1] != width):
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{layer}: input shape {shape}, expected {expected}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(
            f"{layer}: input dtype {x.dtype} (shape {x.shape}), expected {dtype} {expected}"
        )
    if dtype is None and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{layer}: input dtype {x.dtype} (shape {x.shape}), expected float")


class Layer:
    """Base class: no parameters, train mode on."""

    params: list[np.ndarray]
    grads: list[np.ndarray]

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.training = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def spec(self) -> dict:
        """The layer as plain JSON (the architecture stored beside the weights)."""
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Linear(Layer):
    """Affine map ``y = x @ W.T + b`` (the original's "MLP" layer; W stored as (out, in)).

    Parameters
    ----------
    in_features, out_features : int
        Widths of the input (B, in) and output (B, out).
    init : str
        ``uniform`` (the original's), ``he`` or ``glorot``; see :mod:`mnist_suite.nn.init`.
    rng : numpy.random.Generator
        Source of the initial weights.
    dtype : numpy dtype
        float32 by default; inputs must match it.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init: str = "he",
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
    ):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear({in_features}→{out_features}): widths must be > 0")
        self.in_features, self.out_features = in_features, out_features
        rng = rng if rng is not None else np.random.default_rng(0)
        self.set_weights(*get_initialiser(init)(rng, in_features, out_features, np.dtype(dtype)))
        self._x: np.ndarray | None = None

    def set_weights(self, W: np.ndarray, b: np.ndarray) -> None:
        """Adopt ``W`` (out, in) and ``b`` (out,) as the parameters, with fresh gradient buffers."""
        if W.shape != (self.out_features, self.in_features) or b.shape != (self.out_features,):
            raise ValueError(
                f"{self}: weights {W.shape} and bias {b.shape}, expected "
                f"{(self.out_features, self.in_features)} and {(self.out_features,)}"
            )
        self.W, self.b = W, b
        self.dW, self.db = np.zeros_like(W), np.zeros_like(b)
        self.params, self.grads = [self.W, self.b], [self.dW, self.db]

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_2d(self, x, self.in_features, self.W.dtype)
        self._x = x
        out = x @ self.W.T  # (B, out)
        out += self.b  # in place: one pass less than `x @ W.T + b`
        return out

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        # In place, so the optimiser's references in ``grads`` stay valid between steps.
        np.matmul(grad_out.T, self._x, out=self.dW)  # (out, in)
        np.sum(grad_out, axis=0, out=self.db)
        # The first layer's input gradient is never used; skipping it saves a third of its cost.
        return grad_out @ self.W if input_grad else None  # (B, in)

    def spec(self) -> dict:
        return {"type": "Linear", "in": self.in_features, "out": self.out_features}

    def __repr__(self) -> str:
        return f"Linear({self.in_features}→{self.out_features})"


class ReLU(Layer):
    """``max(x, 0)`` elementwise; the gradient passes where the output is positive."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_2d(self, x, None, None)
        self._out = np.maximum(x, 0)
        return self._out

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return grad_out * (self._out > 0)


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``p`` and scale by 1/(1-p).

    In eval mode (``training = False``) it is the identity, so inference needs no rescaling.
    """

    def __init__(self, p: float, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout(p={p}): p must be in [0, 1)")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_2d(self, x, None, None)
        if not self.training or self.p == 0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
        self._mask = keep * np.asarray(1 / (1 - self.p), dtype=x.dtype)  # (B, C)
        return x * self._mask

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return grad_out if self._mask is None else grad_out * self._mask

    def spec(self) -> dict:
        return {"type": "Dropout", "p": self.p}

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of scores (n, k), from max-shifted scores (stable for large z)."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class LogSoftmax(Layer):
    """Row-wise ``z - logsumexp(z)``, computed once from max-shifted scores (stable for large z).

    Backward is the vectorised Jacobian product ``g - softmax * g.sum(axis=1)``, replacing the
    original's Python double loop over batch × classes.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_2d(self, x, None, None)
        self._out = log_softmax(x)
        return self._out  # (B, C)

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return grad_out - np.exp(self._out) * grad_out.sum(axis=1, keepdims=True)


class NLLLoss:
    """Negative log-likelihood of integer targets under log-probabilities (B, C).

    Parameters
    ----------
    reduction : {"mean", "sum"}
        ``sum`` is the original's (its lr 1e-3 at batch 100 equals a mean-loss lr of 0.1).
    smoothing : float
        Label smoothing in [0, 1): the target puts ``1 - smoothing`` on the label and spreads
        ``smoothing`` evenly over all C classes, so the loss is
        ``-(1 - smoothing) * logp[label] - smoothing * mean(logp)`` per sample.
    """

    def __init__(self, reduction: str = "mean", smoothing: float = 0.0):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"NLLLoss: reduction {reduction!r}, expected 'mean' or 'sum'")
        if not 0 <= smoothing < 1:
            raise ValueError(f"NLLLoss: smoothing={smoothing}, expected a value in [0, 1)")
        self.reduction = reduction
        self.smoothing = smoothing

    def forward(self, logp: np.ndarray, target: np.ndarray) -> float:
        _check_2d(self, logp, None, None)
        if not isinstance(target, np.ndarray) or target.shape != (len(logp),):
            shape = getattr(target, "shape", type(target).__name__)
            raise ValueError(f"{self}: target shape {shape}, expected ({len(logp)},)")
        if not np.issubdtype(target.dtype, np.integer):
            raise ValueError(f"{self}: target dtype {target.dtype}, expected integer class labels")
        self._shape, self._dtype, self._target = logp.shape, logp.dtype, target
        picked = logp[np.arange(len(target)), target]  # (B,)
        total = -picked.sum(dtype=np.float64)
        if self.smoothing:
            spread = -logp.sum(dtype=np.float64) / logp.shape[1]
            total = (1 - self.smoothing) * total + self.smoothing * spread
        return float(total / len(target) if self.reduction == "mean" else total)

    def backward(self) -> np.ndarray:
        """d loss / d logp, shape (B, C): minus the (smoothed) target, divided by B for mean."""
        n, c = self._shape
        scale = 1.0 / n if self.reduction == "mean" else 1.0
        grad = np.full(self._shape, -scale * self.smoothing / c, self._dtype)
        grad[np.arange(n), self._target] -= scale * (1 - self.smoothing)
        return grad

    def __repr__(self) -> str:
        extra = f", smoothing={self.smoothing}" if self.smoothing else ""
        return f"NLLLoss(reduction={self.reduction!r}{extra})"


class Sequential(Layer):
    """Layers applied in order; ``params`` / ``grads`` are the layers' lists concatenated."""

    def __init__(self, *layers: Layer):
        super().__init__()
        self.layers = list(layers)
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Backpropagate ``grad_out``; the input gradient is skipped unless asked for."""
        last = len(self.layers) - 1
        for i, layer in enumerate(reversed(self.layers)):
            grad_out = layer.backward(grad_out, input_grad=input_grad or i < last)
        return grad_out

    def train(self, mode: bool = True) -> Sequential:
        """Switch train mode (dropout on) or eval mode for every layer; returns self."""
        self.training = mode
        for layer in self.layers:
            layer.training = mode
        return self

    def predict_log_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Eval-mode outputs for (n, in) in batches (bounded memory); train mode is restored."""
        mode = self.training
        self.train(False)
        try:
            # At least one (possibly empty) batch, so an empty dev split yields (0, C).
            starts = range(0, max(len(x), 1), batch_size)
            return np.concatenate([self.forward(x[i : i + batch_size]) for i in starts])
        finally:
            self.train(mode)

    def spec(self) -> dict:
        return {"type": "Sequential", "layers": [layer.spec() for layer in self.layers]}

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


def mlp(
    sizes: tuple[int, ...] | list[int],
    *,
    init: str = "he",
    rng: np.random.Generator | None = None,
    dtype: np.dtype | type = np.float32,
    dropout: float = 0.0,
) -> Sequential:
    """``Linear → ReLU [→ Dropout] → … → Linear → LogSoftmax`` for sizes like (784, 256, 10).

    Layers are initialised in order from ``rng``, so one seed fixes the whole network.
    """
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes {tuple(sizes)} need at least an input and an output width")
    rng = rng if rng is not None else np.random.default_rng(0)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(Linear(n_in, n_out, init=init, rng=rng, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(ReLU())
            if dropout:
                layers.append(Dropout(dropout, rng))
    layers.append(LogSoftmax())
    return Sequential(*layers)
