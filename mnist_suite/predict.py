"""The original's viewer, headless: one test image, titled with the model's prediction, to a PNG."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_suite.errors import ConfigError, DataError
from mnist_suite.files import atomic_write_bytes
from mnist_suite.nn import load_model


@dataclass(frozen=True)
class Prediction:
    index: int
    label: int  # the true test label
    predicted: int
    probability: float  # the model's probability of ``predicted``


def predict_image(
    weights: Path, index: int, out: Path, data_options: dict | None = None
) -> Prediction:
    """Classify test image ``index`` with the model in ``weights`` and save the titled figure.

    Parameters
    ----------
    weights : Path
        A classifier run's ``artifacts/weights.npz`` (``softmax*``, ``mlp*``: the format of
        :func:`mnist_suite.nn.save_model`).
    index : int
        Position in the 10,000-image MNIST test set.
    out : Path
        The PNG to write (atomically).
    """
    model = load_model(weights)
    mnist = _load_mnist(data_options or {})
    if not 0 <= index < len(mnist.x_test):
        raise ConfigError(f"index {index}: the test set has images 0..{len(mnist.x_test) - 1}")
    image = mnist.x_test[index]  # (28, 28) uint8
    dtype = model.params[0].dtype
    x = (image.reshape(1, -1) / 255).astype(dtype)  # (1, 784): the scaling used in training
    try:
        proba = np.exp(model.predict_log_proba(x)[0])  # (10,)
    except ValueError as exc:
        raise DataError(f"{weights}: not an MNIST classifier: {exc}") from None
    if not np.isfinite(proba).all():  # finite weights can still overflow on a real image
        raise DataError(f"{weights}: the model's probabilities for image #{index} are not finite")
    result = Prediction(index, int(mnist.y_test[index]), int(proba.argmax()), float(proba.max()))
    atomic_write_bytes(out, _figure(image, result))
    return result


def _load_mnist(data_options: dict):
    from mnist_suite.data import load_mnist

    return load_mnist(**data_options)


def _figure(image: np.ndarray, p: Prediction) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or in containers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 3.6), dpi=100)
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_axis_off()
    ax.set_title(
        f"Prediction: {p.predicted} ({p.probability:.1%})\nImage #{p.index}, label {p.label}",
        fontsize=10,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
