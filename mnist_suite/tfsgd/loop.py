"""Plain SGD on a Keras MLP with our own update rule: the original's GradientTape loop, made fast.

The original computed gradients with ``tf.GradientTape`` and applied them with ``set_weights`` every
batch (a host round trip per step). Here the update is ``assign_sub`` inside a compiled step and,
for training, a whole epoch is one ``tf.function`` call that loops over the batches in the graph,
so no Python runs between steps. The original update is kept (``update="set_weights"``) to compare.

A graph is traced once per shape and process: :func:`trainer` keeps one traced trainer per shape
(what its graphs depend on) and gives the next run of that shape the same graphs with fresh
weights, learning rate and momentum, the weights a freshly built model of the run starts from.

TensorFlow is imported here and in ``mnist_suite.autoencoders`` only; job modules import them inside
``train`` so listing jobs, the NumPy jobs and the report never load it.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from mnist_suite.seeding import seed_tensorflow
from mnist_suite.tfsgd import REDUCTIONS, UPDATES

EVAL_CHUNK = 10_000  # rows per evaluation call: bounds memory for wide nets
# Traced trainers kept per process (the least recently used goes first): a grid has a few
# shapes (nets x batch sizes); the wide net's variables are a few MB.
CACHED_SHAPES = 8

log = logging.getLogger(__name__)


def configure(seed: int, threads: int = 0) -> None:
    """Fix TF's thread pools (optionally), then seed TF and make ops deterministic.

    Parameters
    ----------
    seed : int
        The run's seed: TensorFlow and Keras get its ``tf`` stream
        (:func:`mnist_suite.seeding.seed_tensorflow`, the one place that seeds them).
    threads : int
        Intra- and inter-op threads; 0 keeps TensorFlow's default. Only takes effect before
        TensorFlow's first op in the process (later calls are logged and ignored).

    Earlier runs' traced trainers are kept (:func:`trainer` restarts them for a run).
    """
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            log.warning("TensorFlow already initialised: threads=%d ignored", threads)
    seed_tensorflow(seed)


def thread_settings() -> dict[str, int]:
    """TensorFlow's thread-pool sizes as configured (0 = TensorFlow's default)."""
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def build_model(widths: Sequence[int] = (32, 32), n_in: int = 784, n_out: int = 10) -> keras.Model:
    """The original's Keras functional MLP: ReLU hidden layers, softmax output, Glorot init.

    ``widths=(32, 32)`` gives the original's 784-32-32-10 net (26,506 parameters).
    Input (B, n_in) float32 -> class probabilities (B, n_out).
    """
    inputs = keras.Input(shape=(n_in,), name="pixels")
    h = inputs
    for i, width in enumerate(widths):
        h = keras.layers.Dense(width, activation="relu", name=f"hidden_{i}")(h)
    outputs = keras.layers.Dense(n_out, activation="softmax", name="probs")(h)
    return keras.Model(inputs, outputs, name="mlp_" + "_".join(map(str, widths)))


def per_sample_loss(y: tf.Tensor, probs: tf.Tensor) -> tf.Tensor:
    """Sparse categorical cross-entropy of probabilities: (B,) int, (B, K) -> (B,)."""
    return keras.losses.sparse_categorical_crossentropy(y, probs)


class SGDTrainer:
    """Mini-batch SGD (optionally with momentum) on ``model``'s trainable variables.

    Parameters
    ----------
    model : keras.Model
        Maps (B, 784) float32 to (B, 10) probabilities.
    lr : float
        Step size applied to the gradient of the reduced loss.
    batch_size : int
        Rows per step; the last batch of an epoch may be smaller.
    reduction : {"sum", "mean"}
        What the tape differentiates: the original's sum over the batch (the effective mean-loss
        step is ``batch_size * lr``) or the mean.
    momentum : float
        Heavy-ball momentum (0 = plain SGD, the original's).
    update : {"assign_sub", "set_weights"}
        Compiled in-place updates, or the original's eager step that copies the weights to NumPy
        and back with ``set_weights`` every batch (slow; kept for comparison).
    """

    def __init__(
        self,
        model: keras.Model,
        lr: float,
        batch_size: int,
        reduction: str = "sum",
        momentum: float = 0.0,
        update: str = "assign_sub",
    ):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} (expected one of {REDUCTIONS})")
        if update not in UPDATES:
            raise ValueError(f"update={update!r} (expected one of {UPDATES})")
        if update == "set_weights" and momentum:
            raise ValueError("the original's set_weights update has no momentum")
        self.model = model
        self.batch_size = int(batch_size)
        self.reduction = reduction
        self.update = update
        self.variables = list(model.trainable_variables)
        self.velocity = [
            tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables
        ]
        # Variables, not constants of the graph: a trainer of the same shape takes another
        # learning rate or momentum without tracing again (float32 either way: the same steps).
        self._lr = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self._momentum = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self._heavy_ball = bool(momentum)  # whether the graph has the momentum update at all
        self._set_rates(lr, momentum)
        row = [tf.TensorSpec((None, model.input_shape[-1]), tf.float32)]
        labels = [tf.TensorSpec((None,), tf.int32)]
        self.train_step = tf.function(self._train_step, input_signature=row + labels)
        self._eval_chunk = tf.function(self._eval_sums, input_signature=row + labels)
        self._epoch = tf.function(
            self._epoch_in_graph,
            input_signature=[*row, *labels, tf.TensorSpec((None,), tf.int32)],
        )

    @property
    def tracing_count(self) -> int:
        """Graphs traced by this trainer's compiled functions so far (each traces once)."""
        functions = (self.train_step, self._eval_chunk, self._epoch)
        return sum(f.experimental_get_tracing_count() for f in functions)

    def _set_rates(self, lr: float, momentum: float) -> None:
        if bool(momentum) != self._heavy_ball:
            raise ValueError(f"momentum={momentum}: this trainer's graph is of another shape")
        self.lr = float(lr)  # the original's update takes it in NumPy
        self.momentum = float(momentum)
        self._lr.assign(self.lr)
        self._momentum.assign(self.momentum)

    def restart(self, fresh: keras.Model, lr: float, momentum: float = 0.0) -> None:
        """Start over from ``fresh``'s weights (a newly built model of the same shape), with zero
        velocity, learning rate ``lr`` and ``momentum``; the graphs are kept, not traced again."""
        for v, w in zip(self.model.variables, fresh.variables, strict=True):
            v.assign(w)
        for vel in self.velocity:
            vel.assign(tf.zeros(vel.shape, vel.dtype))
        self._set_rates(lr, momentum)

    def _loss_and_grads(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """Mean batch loss (what is reported) and gradients of the reduced loss."""
        with tf.GradientTape() as tape:
            losses = per_sample_loss(y, self.model(x, training=True))  # (B,)
            reduced = tf.reduce_sum(losses) if self.reduction == "sum" else tf.reduce_mean(losses)
        return tf.reduce_mean(losses), tape.gradient(reduced, self.variables)

    def _apply(self, grads: list[tf.Tensor]) -> None:
        if self._heavy_ball:
            for v, vel, g in zip(self.variables, self.velocity, grads, strict=True):
                vel.assign(self._momentum * vel + g)
                v.assign_sub(self._lr * vel)
        else:
            for v, g in zip(self.variables, grads, strict=True):
                v.assign_sub(self._lr * g)

    def _train_step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """One compiled step on (B, 784), (B,); returns the batch's mean loss."""
        loss, grads = self._loss_and_grads(x, y)
        self._apply(grads)
        return loss

    def original_step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """The original's step: eager tape, then weights += -lr * grad through ``set_weights``."""
        loss, grads = self._loss_and_grads(x, y)
        weights = self.model.get_weights()  # same order as trainable_variables (no frozen ones)
        self.model.set_weights(
            [w - self.lr * g.numpy() for w, g in zip(weights, grads, strict=True)]
        )
        return loss

    def _epoch_in_graph(self, x: tf.Tensor, y: tf.Tensor, order: tf.Tensor) -> tf.Tensor:
        """Train over ``order``'s rows in batches, all in one graph; returns (steps,) losses.

        Stops after the first non-finite batch loss, so the result is shorter then.
        """
        n = tf.shape(order)[0]
        steps = (n + self.batch_size - 1) // self.batch_size
        losses = tf.TensorArray(tf.float32, size=steps, dynamic_size=False)
        done = tf.constant(0)
        for i in tf.range(steps):
            idx = order[i * self.batch_size : tf.minimum((i + 1) * self.batch_size, n)]
            loss = self._train_step(tf.gather(x, idx), tf.gather(y, idx))
            losses = losses.write(i, loss)
            done = i + 1
            if not tf.math.is_finite(loss):
                break
        return losses.stack()[:done]

    def train_epoch(self, x: tf.Tensor, y: tf.Tensor, order: np.ndarray) -> np.ndarray:
        """One epoch over x[order] in batches; returns the per-batch mean losses (steps,).

        ``x`` (N, 784) float32 and ``y`` (N,) int32 should be tensors already (converting
        the training set every epoch costs more than the epoch's Python overhead).
        The array is cut after the first non-finite loss (the caller reports divergence).
        """
        order = tf.constant(order, tf.int32)
        if self.update == "assign_sub":
            return self._epoch(x, y, order).numpy()
        losses = []
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            loss = float(self.original_step(tf.gather(x, idx), tf.gather(y, idx)))
            losses.append(loss)
            if not math.isfinite(loss):
                break
        return np.asarray(losses, np.float32)

    def _eval_sums(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        probs = self.model(x, training=False)  # (B, 10)
        correct = tf.equal(tf.argmax(probs, axis=1, output_type=tf.int32), y)
        return (
            tf.reduce_sum(per_sample_loss(y, probs)),
            tf.reduce_sum(tf.cast(correct, tf.float32)),
        )

    def evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[float, float]:
        """Mean loss and accuracy over (N, 784), (N,), in chunks of ``EVAL_CHUNK`` rows."""
        n = int(x.shape[0])
        loss_sum = correct = 0.0
        for start in range(0, n, EVAL_CHUNK):
            s_loss, s_correct = self._eval_chunk(
                x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
            )
            loss_sum += float(s_loss)
            correct += float(s_correct)
        return loss_sum / n, correct / n


@dataclass(frozen=True)
class Shape:
    """What a trainer's traced graphs depend on (784 inputs, 10 classes, float32 throughout):
    runs of one shape share them."""

    widths: tuple[int, ...]
    batch_size: int  # a Python number in the epoch's graph
    reduction: str
    heavy_ball: bool  # momentum > 0: the graph has the velocity update
    update: str


_TRAINERS: OrderedDict[Shape, SGDTrainer] = OrderedDict()


def trainer(
    widths: Sequence[int],
    lr: float,
    batch_size: int,
    reduction: str = "sum",
    momentum: float = 0.0,
    update: str = "assign_sub",
) -> SGDTrainer:
    """``SGDTrainer(build_model(widths), lr, batch_size, ...)`` on a fresh model, reusing the
    graphs this process traced for the same shape.

    The model is built here either way, after the caller seeded TensorFlow (:func:`configure`),
    so its weights are drawn as a fresh run draws them; a cached trainer of the shape restarts
    from them (:meth:`SGDTrainer.restart`) and keeps its traces. Its ``model`` is the cached one.
    """
    model = build_model(widths)
    shape = Shape(tuple(widths), int(batch_size), reduction, bool(momentum), update)
    cached = _TRAINERS.pop(shape, None)
    if cached is None:
        cached = SGDTrainer(model, lr, batch_size, reduction, momentum, update)
    else:
        cached.restart(model, lr, momentum)
    _TRAINERS[shape] = cached
    while len(_TRAINERS) > CACHED_SHAPES:
        _TRAINERS.popitem(last=False)
    return cached


def clear_trainers() -> None:
    """Forget this process's traced trainers and Keras's state: the next run traces afresh."""
    _TRAINERS.clear()
    keras.backend.clear_session()


def to_tensors(x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    """(N, 784) float32 and (N,) int32 tensors, converted once for the whole run."""
    return tf.constant(x, tf.float32), tf.constant(y, tf.int32)


def count_params(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
