"""Autoencoders in Keras 3 with scikit-learn PCA's interface, and the noise transform.

Every reconstruction model here offers ``fit(X) -> self``, ``transform(X) -> Z`` and
``inverse_transform(Z) -> X`` exactly like :class:`sklearn.decomposition.PCA`, so "PCA versus
autoencoders" is a loop over interchangeable objects. ``__init__`` only stores arguments; ``fit``
sets the trailing-underscore attributes. A denoising autoencoder is not a model class: it is any
variant fitted with a ``corrupt`` data transform (:func:`gaussian_noise`), drawn afresh per batch.

Keras (and so TensorFlow) is imported only when a model is built, so importing this module for
the noise transform or the metrics stays cheap.

A fit's epoch graph is traced once per shape and process: the process keeps one traced workspace
(models, optimiser, epoch graph) per shape, and every fit of that shape trains in it from its own
fresh weights and a new optimiser state, then hands the trained weights to its own models.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mnist_suite.errors import Diverged, ParameterError

if TYPE_CHECKING:
    import keras

N_FEATURES = 784
# Variants whose bottleneck is fixed by the original's architecture; the others take latent_dim.
FIXED_LATENT = {"original-2d": 2, "wide": 512, "original-deep": 128}
VARIANTS = ("linear", "deep", *FIXED_LATENT)
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
# Training losses: pixel MSE, or binary cross-entropy of the sigmoid output against the target,
# both read on the output's [0, 1] scale (BCE needs a sigmoid output: not the linear variant).
LOSSES = ("mse", "bce")
ACTIVATIONS = ("elu", "relu", "gelu", "swish", "tanh")  # hidden layers of `deep`
DEEP_HIDDEN = (512, 256, 128)  # encoder widths of `deep`; the decoder mirrors them
# Traced workspaces kept per process (the least recently used goes first): a job has a few
# models; the largest, with Adam's two slots, is about 15 MB.
CACHED_SHAPES = 8

Corrupt = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def gaussian_noise(
    x: np.ndarray,
    factor: float,
    rng: np.random.Generator,
    clip: tuple[float, float] | None = None,
) -> np.ndarray:
    """``x + factor * N(0, 1)``, optionally clipped to the valid range ``clip = (lo, hi)``.

    Parameters
    ----------
    x : ndarray of shape (n, d), float
        Clean inputs, in whatever units the model is trained in.
    factor : float
        Noise standard deviation in those units (the original: 0.4 in z-score units).
    rng : numpy Generator
        Source of the noise; a fresh draw on every call.
    clip : (lo, hi) or None
        Clip the noisy inputs to this range (pixel mode: the images' valid range).

    Returns
    -------
    ndarray of shape (n, d), same dtype as ``x``
    """
    if factor < 0:
        raise ParameterError(f"noise factor={factor} must be >= 0")
    noisy = x + np.asarray(factor, x.dtype) * rng.standard_normal(x.shape, dtype=x.dtype)
    if clip is not None:
        np.clip(noisy, clip[0], clip[1], out=noisy)
    return noisy


def noise_transform(
    factor: float,
    clip: tuple[float, float] | None = None,
    rng: np.random.Generator | None = None,
) -> Corrupt:
    """The ``corrupt(x, rng)`` transform of :func:`gaussian_noise` with fixed factor and clip.

    With ``rng`` the noise comes from that generator (a run's ``noise`` stream) instead of the
    one ``fit`` passes in, so noise and shuffling stay independent streams.
    """
    if factor < 0:
        raise ParameterError(f"noise factor={factor} must be >= 0")

    def corrupt(x: np.ndarray, fit_rng: np.random.Generator) -> np.ndarray:
        return gaussian_noise(x, factor, fit_rng if rng is None else rng, clip)

    return corrupt


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ParameterError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ParameterError(f"unknown {name} {value!r} (expected one of {', '.join(choices)})")


def latent_size(variant: str, latent_dim: int | None = None) -> int:
    """The bottleneck width of ``variant``; raises ParameterError for bad variants or sizes."""
    check_choice("autoencoder variant", variant, VARIANTS)
    fixed = FIXED_LATENT.get(variant)
    if fixed is not None:
        if latent_dim not in (None, fixed):
            raise ParameterError(f"{variant} has a fixed latent size {fixed}, not {latent_dim}")
        return fixed
    if latent_dim is None:
        raise ParameterError(f"{variant} needs a latent size")
    if not 0 < latent_dim < N_FEATURES:
        raise ParameterError(f"latent size {latent_dim} must be in 1..{N_FEATURES - 1}")
    return latent_dim


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over every element of two (n, d) arrays (float64 accumulator)."""
    return float(np.mean(np.square(a - b), dtype=np.float64))


def fvu(reconstruction: np.ndarray, x: np.ndarray) -> float:
    """Fraction of variance unexplained: squared error / squared deviation from x's mean.

    Invariant to affine rescaling of the data, so it compares z-score and pixel runs.
    """
    x64 = x.astype(np.float64)
    total = np.sum(np.square(x64 - x64.mean(axis=0)))
    return float(np.sum(np.square(x64 - reconstruction)) / total)


def _output_layers(layers, output_range: tuple[float, float] | None) -> list:
    """Dense(784) with sigmoid scaled to ``output_range``, or linear if it is None."""
    if output_range is None:
        return [layers.Dense(N_FEATURES, name="output")]
    lo, hi = output_range
    out = [layers.Dense(N_FEATURES, activation="sigmoid", name="output")]
    if (lo, hi) != (0.0, 1.0):
        # A sigmoid cannot reach z-scored pixels below 0: rescale it to the data's range.
        out.append(layers.Rescaling(hi - lo, offset=lo, name="output_range"))
    return out


def build_autoencoder(
    variant: str,
    latent_dim: int | None = None,
    output_range: tuple[float, float] | None = (0, 1),
    activation: str = "elu",
    hidden: tuple[int, ...] = DEEP_HIDDEN,
) -> tuple[keras.Model, keras.Model, keras.Model]:
    """The (encoder, decoder, autoencoder) Keras models of ``variant``.

    ``linear``: Dense(k) -> Dense(784), no activation anywhere (what PCA is the optimum of).
    ``original-2d``: Dense(2, relu) -> Dense(784, sigmoid); ``wide``: Dense(512, relu) -> the same.
    ``original-deep``: the original's denoiser, Dense 512-256-128 (relu) -> Dense(784, sigmoid).
    ``deep``: 784-512-256-128-k-128-256-512-784 (encoder widths ``hidden``, mirrored),
    ``activation`` in the hidden layers, linear latent; hidden widths not larger than k are
    dropped (k = 128: 784-512-256-128-256-512-784).
    ``output_range`` scales the sigmoid output of the non-linear variants (None: linear output).
    """
    import keras
    from keras import layers

    k = latent_size(variant, latent_dim)
    check_choice("activation", activation, ACTIVATIONS)
    if variant == "linear":
        encoder_layers = [layers.Dense(k, name="latent")]
        decoder_layers = [layers.Dense(N_FEATURES, name="output")]
    elif variant in ("original-2d", "wide"):
        encoder_layers = [layers.Dense(k, activation="relu", name="latent")]
        decoder_layers = _output_layers(layers, output_range)
    elif variant == "original-deep":
        encoder_layers = [layers.Dense(w, activation="relu") for w in (512, 256)]
        encoder_layers.append(layers.Dense(k, activation="relu", name="latent"))
        decoder_layers = _output_layers(layers, output_range)
    else:
        hidden = [w for w in hidden if w > k]
        encoder_layers = [layers.Dense(w, activation=activation) for w in hidden]
        encoder_layers.append(layers.Dense(k, name="latent"))
        decoder_layers = [layers.Dense(w, activation=activation) for w in reversed(hidden)]
        decoder_layers += _output_layers(layers, output_range)
    encoder = keras.Sequential(
        [keras.Input((N_FEATURES,)), *encoder_layers], name=f"{variant}_encoder"
    )
    decoder = keras.Sequential([keras.Input((k,)), *decoder_layers], name=f"{variant}_decoder")
    inputs = keras.Input((N_FEATURES,))
    model = keras.Model(inputs, decoder(encoder(inputs)), name=f"{variant}_autoencoder")
    return encoder, decoder, model


class Autoencoder:
    """A Keras autoencoder with PCA's interface: ``fit``, ``transform``, ``inverse_transform``.

    Parameters
    ----------
    variant : str
        One of ``linear``, ``original-2d``, ``wide``, ``original-deep``, ``deep`` (see
        :func:`build_autoencoder`).
    latent_dim : int or None
        Bottleneck width k (``linear`` and ``deep``; the others have a fixed one).
    output_range : (lo, hi) or None
        Range of the sigmoid output: (0, 1) for pixels, the z-scored [0, 1] for z-score data.
    hidden : tuple of int
        Encoder widths of ``deep`` (the decoder mirrors them).
    activation : str
        Hidden layers of ``deep`` (the original's variants keep their ReLU). ELU by default: on
        MNIST at k = 32 it reached 0.35x PCA's test MSE in 9 epochs where ReLU was at 0.47x.
    optimizer : {"adam", "sgd"}
    learning_rate : float
        Peak learning rate.
    loss : {"mse", "bce"}
        What training minimises: the mean squared error, or the binary cross-entropy of each
        output pixel (the sigmoid's value mapped from ``output_range`` to [0, 1]) against the
        target pixel on the same scale. Validation and test are always scored by MSE.
    schedule : {"constant", "cosine"}
        Cosine decays the learning rate to 0 over all steps.
    momentum : float
        Only for ``sgd``.
    batch_size, epochs : int
    corrupt : callable ``(x_batch, rng) -> noisy_batch`` or None
        Data transform applied to every training batch (drawn afresh each epoch): the model
        learns to map ``corrupt(X)`` to ``y``. This is what makes a denoising autoencoder.
    random_state : int or numpy Generator
        An int seeds initialisation (via ``keras.utils.set_random_seed``), shuffling and noise.
        A Generator draws shuffling (and noise) only: the caller has seeded TensorFlow (a
        run's ``seed_tensorflow``), so each random stream has one source.

    Attributes
    ----------
    encoder_, decoder_, model_ : keras.Model
        784 -> k, k -> 784 and their composition.
    latent_dim_ : int
    n_features_in_ : int
    history_ : dict[str, list[float]]
        Per-epoch ``loss`` (mean training batch loss) and ``val_loss`` if validation data was
        given.
    n_steps_ : int
        Optimiser steps taken.
    traced_ : int
        Graphs the fit traced: 1, or 0 when its process had traced the shape already.
    """

    def __init__(
        self,
        variant: str = "deep",
        latent_dim: int | None = None,
        *,
        output_range: tuple[float, float] | None = (0.0, 1.0),
        activation: str = "elu",
        hidden: tuple[int, ...] = DEEP_HIDDEN,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        loss: str = "mse",
        schedule: str = "constant",
        momentum: float = 0.0,
        batch_size: int = 256,
        epochs: int = 10,
        corrupt: Corrupt | None = None,
        random_state: int | np.random.Generator = 0,
    ):
        self.variant = variant
        self.latent_dim = latent_dim
        self.output_range = output_range
        self.activation = activation
        self.hidden = hidden
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.loss = loss
        self.schedule = schedule
        self.momentum = momentum
        self.batch_size = batch_size
        self.epochs = epochs
        self.corrupt = corrupt
        self.random_state = random_state

    def _check_params(self) -> None:
        latent_size(self.variant, self.latent_dim)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("loss", self.loss, LOSSES)
        if self.loss == "bce" and (self.output_range is None or self.variant == "linear"):
            raise ParameterError("loss='bce' needs a sigmoid output (not the linear variant)")
        if not self.learning_rate > 0 or not 0 <= self.momentum < 1:
            raise ParameterError(
                f"learning_rate={self.learning_rate} must be > 0 and momentum={self.momentum} "
                "in [0, 1)"
            )
        if self.batch_size <= 0 or self.epochs <= 0:
            raise ParameterError(
                f"batch_size={self.batch_size} and epochs={self.epochs} must be > 0"
            )

    def _make_optimizer(self, total_steps: int):
        import keras

        lr = self.learning_rate
        if self.schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(total_steps, 1))
        if self.optimizer == "adam":
            return keras.optimizers.Adam(lr)
        return keras.optimizers.SGD(lr, momentum=self.momentum)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray | None = None,
        *,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        evaluating: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> Autoencoder:
        """Train on ``X`` (n, 784) to reconstruct ``y`` (n, 784), default ``X``.

        ``validation_data = (X_val, y_val)`` adds a per-epoch ``val_loss``, computed inside
        ``evaluating()`` (a run's evaluation clock: :meth:`mnist_suite.runs.Run.evaluating`).
        ``on_epoch_end(epoch, logs)`` is called after every epoch (1-based) with ``loss``,
        ``val_loss`` and ``seconds`` (the epoch's training, its validation apart). A non-finite
        epoch loss raises :class:`mnist_suite.errors.Diverged`.
        """
        self._check_params()
        import keras
        import tensorflow as tf

        X = np.asarray(X, np.float32)
        y = X if y is None else np.asarray(y, np.float32)
        if X.ndim != 2 or X.shape[1] != N_FEATURES or y.shape != X.shape:
            raise ValueError(f"X and y must have shape (n, {N_FEATURES}); got {X.shape}, {y.shape}")
        if isinstance(self.random_state, np.random.Generator):
            rng = self.random_state
        else:
            keras.utils.set_random_seed(self.random_state)
            rng = np.random.default_rng(self.random_state)
        # This fit's own models, drawn as a fresh run draws them; they get the trained weights.
        own = build_autoencoder(
            self.variant, self.latent_dim, self.output_range, self.activation, self.hidden
        )
        self.latent_dim_ = latent_size(self.variant, self.latent_dim)
        self.n_features_in_ = N_FEATURES
        n = len(X)
        steps_per_epoch = math.ceil(n / self.batch_size)
        workspace = _workspace(self, n)
        workspace.restart(own[2])
        traces = workspace.train_epoch.experimental_get_tracing_count()
        # While it trains, its models are the workspace's (validation and on_epoch_end
        # reconstruct with them); at the end, its own take the trained weights.
        self.encoder_, self.decoder_, self.model_ = workspace.models
        y_tensor = tf.constant(y)
        x_tensor = y_tensor if X is y else tf.constant(X)
        self.history_ = {"loss": []}
        if validation_data is not None:
            self.history_["val_loss"] = []
        try:
            for epoch in range(1, self.epochs + 1):
                start = time.perf_counter()
                order = rng.permutation(n).astype(np.int32)
                # Fresh noise for the whole training set every epoch (a data transform, in NumPy).
                x_in = x_tensor if self.corrupt is None else self.corrupt(X, rng)
                loss = float(workspace.train_epoch(x_in, y_tensor, order))
                seconds = time.perf_counter() - start
                self.n_steps_ = epoch * steps_per_epoch
                if not math.isfinite(loss):
                    raise Diverged(self.n_steps_, loss)
                logs = {"loss": loss}
                self.history_["loss"].append(loss)
                if validation_data is not None:
                    x_val, y_val = validation_data
                    with evaluating():
                        logs["val_loss"] = mse(self.reconstruct(x_val), np.asarray(y_val))
                    self.history_["val_loss"].append(logs["val_loss"])
                logs["seconds"] = seconds
                if on_epoch_end is not None:
                    on_epoch_end(epoch, logs)
        finally:
            for mine, trained in zip(own[2].variables, workspace.models[2].variables, strict=True):
                mine.assign(trained)
            self.encoder_, self.decoder_, self.model_ = own
            self.traced_ = workspace.train_epoch.experimental_get_tracing_count() - traces
        return self

    def _predict(self, part: str, X: np.ndarray) -> np.ndarray:
        """The fitted model ``part`` (``encoder_``, ``decoder_``, ``model_``) on ``X`` in chunks
        of 2048 rows, eagerly.

        Keras's ``predict`` builds a tf.data pipeline per call: slow for per-epoch evaluation,
        while a few eager calls of large chunks cost little over the matrix products.
        """
        self._check_fitted()
        model = getattr(self, part)
        X = np.asarray(X, np.float32)
        chunks = [
            np.asarray(model(X[s : s + 2048], training=False)) for s in range(0, len(X), 2048)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, model.output_shape[-1]))

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ValueError("this Autoencoder is not fitted yet; call fit(X) first")

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Encode ``X`` (n, 784) to the latent ``Z`` (n, k)."""
        return self._predict("encoder_", X)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Decode ``Z`` (n, k) to reconstructions (n, 784)."""
        return self._predict("decoder_", Z)

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """``inverse_transform(transform(X))`` in one pass: (n, 784) -> (n, 784)."""
        return self._predict("model_", X)

    def count_params(self) -> int:
        """Trainable parameters of the whole autoencoder."""
        self._check_fitted()
        return int(self.model_.count_params())


class _Workspace:
    """What a fit traces, for one shape: models, optimiser and the compiled epoch.

    Fits of the same shape in this process train here in turn (:func:`_workspace`); each starts
    it over (:meth:`restart`), so the graph is traced once per shape and process.
    """

    def __init__(self, ae: Autoencoder, n: int):
        import tensorflow as tf

        # Spare models, built without drawing from Python's random stream: the fit's own models
        # draw from it, as they would with no workspace kept.
        state = random.getstate()
        try:
            self.models = build_autoencoder(
                ae.variant, ae.latent_dim, ae.output_range, ae.activation, ae.hidden
            )
        finally:
            random.setstate(state)
        model = self.models[2]
        batch_size = ae.batch_size
        self.optimizer = ae._make_optimizer(ae.epochs * math.ceil(n / batch_size))
        self.optimizer.build(model.trainable_variables)  # its state, saved before any step
        self._start = [v.numpy() for v in self.optimizer.variables]
        optimizer = self.optimizer
        data = tf.TensorSpec((None, N_FEATURES), tf.float32)
        mse_loss = ae.loss == "mse"
        lo, hi = ae.output_range or (0.0, 1.0)
        eps = 1e-7  # keeps log() finite where the sigmoid saturates (Keras clips the same)

        def batch_loss(out, yb):
            if mse_loss:
                return tf.reduce_mean(tf.square(out - yb))
            p = tf.clip_by_value((out - lo) / (hi - lo), eps, 1 - eps)
            t = (yb - lo) / (hi - lo)
            return -tf.reduce_mean(t * tf.math.log(p) + (1 - t) * tf.math.log(1 - p))

        # A whole epoch in one graph: no Python between steps, which for the small models costs
        # more than the arithmetic. The last batch is short, like Keras's own fit.
        @tf.function(input_signature=[data, data, tf.TensorSpec((None,), tf.int32)])
        def train_epoch(x, y, order):
            total = tf.constant(0.0)
            for first in tf.range(0, n, batch_size):
                idx = order[first : first + batch_size]
                xb, yb = tf.gather(x, idx), tf.gather(y, idx)  # (B, 784)
                with tf.GradientTape() as tape:
                    loss = batch_loss(model(xb, training=True), yb)
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
                # Weighted by batch size: the epoch mean is Keras's per-sample mean.
                total += loss * tf.cast(tf.size(idx), tf.float32)
            return total / n

        self.train_epoch = train_epoch

    def restart(self, fresh: keras.Model) -> None:
        """Start over from ``fresh``'s weights (an autoencoder of this shape) and the
        optimiser's state before its first step."""
        for v, w in zip(self.models[2].variables, fresh.variables, strict=True):
            v.assign(w)
        for v, value in zip(self.optimizer.variables, self._start, strict=True):
            v.assign(value)


_WORKSPACES: OrderedDict[tuple, _Workspace] = OrderedDict()


def _workspace(ae: Autoencoder, n: int) -> _Workspace:
    """This process's workspace for ``ae`` fitted on ``n`` rows: everything its graph depends
    on (architecture, output range, loss, optimiser and its schedule, batch size, epochs, n)."""
    shape = (
        ae.variant,
        latent_size(ae.variant, ae.latent_dim),
        None if ae.output_range is None else tuple(map(float, ae.output_range)),
        ae.activation,
        tuple(ae.hidden),
        ae.optimizer,
        float(ae.learning_rate),
        ae.loss,
        ae.schedule,
        float(ae.momentum),
        ae.batch_size,
        ae.epochs,
        n,
    )
    workspace = _WORKSPACES.pop(shape, None) or _Workspace(ae, n)
    _WORKSPACES[shape] = workspace
    while len(_WORKSPACES) > CACHED_SHAPES:
        _WORKSPACES.popitem(last=False)
    return workspace


def clear_workspaces() -> None:
    """Forget this process's traced workspaces and Keras's state: the next fit traces afresh."""
    import keras

    _WORKSPACES.clear()
    keras.backend.clear_session()
