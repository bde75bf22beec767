"""The scratch MLP in NumPy: the original's network reproduced, then our best NumPy-only classifier.

``mlp-original`` is the original 784-10-10 ReLU net as trained: uniform[-0.5, 0.5) weights and
biases, sum-reduced NLL, plain SGD at lr 1e-3, 5000 iterations of 100 images drawn with
replacement, 1000 training images held out as dev (original: about 92.5% test). The original held
out the first 1000 rows of its shuffled CSV; here that is the run's stratified dev split of 1000.
``mlp`` is Simard's recipe on 2 cores: a 784-800-800-10 ReLU net (He init, Nesterov momentum,
weight decay, cosine schedule with warm-up) trained on every batch distorted afresh (random
affine map plus an elastic field, :class:`mnist_suite.nn.Distortion`), with optional label
smoothing and an exponential moving average of the weights (then evaluated and saved); ≤ 5 min.
``mlp-fast`` is a lighter recipe: 784-512-256-10 with random ±2-pixel shifts, 20 epochs
(≈ 40 s). ``mlp-sprint`` is the same net without augmentation for a few epochs: the sprint to
98% dev accuracy (time to target, not final accuracy).
Both train on 55,000 images with the run's 5,000-image dev split held out for choices; the
test set is scored once, at the end.
Random streams come from the run (``init``, ``order``, ``augment``), never from a local seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mnist_suite.data import batch_indices, to_unit
from mnist_suite.data.split import split_arrays
from mnist_suite.errors import Diverged, ParameterError
from mnist_suite.jobs import Job, register
from mnist_suite.metrics import accuracy, confusion
from mnist_suite.nn import (
    INITIALISERS,
    SCHEDULES,
    SGD,
    Distortion,
    NLLLoss,
    Sequential,
    WeightAverage,
    make_schedule,
    mlp,
)
from mnist_suite.nn.io import model_arrays
from mnist_suite.tb import CLASSIFIER_EPOCH, CLASSIFIER_EVAL, RUN_SCALARS, TARGET_SCALARS
from mnist_suite.threads import blas_threads

DTYPES = ("float32", "float64")
MNIST_TRAIN = 60000  # the loader verifies checksums, so the training set is always this size


def _check_common(init: str, dtype: str, lr: float, batch_size: int) -> None:
    if init not in INITIALISERS:
        raise ParameterError(
            f"unknown initialiser {init!r} (expected one of {', '.join(INITIALISERS)})"
        )
    if dtype not in DTYPES:
        raise ParameterError(f"dtype={dtype!r} must be one of {', '.join(DTYPES)}")
    if not lr > 0:
        raise ParameterError(f"lr={lr} must be > 0")
    if batch_size <= 0:
        raise ParameterError(f"batch_size={batch_size} must be > 0")


def _check_split(batch_size: int, n: int, n_dev: int) -> None:
    """Checked in the config, so a bad value fails before a run directory exists."""
    if not 0 <= n_dev < n:
        raise ParameterError(f"n_dev={n_dev} must be in [0, {n})")
    if batch_size > n - n_dev:
        raise ParameterError(
            f"batch_size={batch_size} exceeds the {n - n_dev} training samples after the dev split"
        )


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Move each image by its own random (dy, dx) in [-max_shift, max_shift]², zero-filled.

    Parameters
    ----------
    images : ndarray of shape (n, H, W)
        Any dtype (uint8 here: shifting bytes moves 4× less memory than floats).

    Returns
    -------
    ndarray of shape (n, H, W), same dtype.
    """
    n, h, w = images.shape
    s = max_shift
    padded = np.zeros((n, h + 2 * s, w + 2 * s), images.dtype)
    padded[:, s : s + h, s : s + w] = images
    # (n, 2s+1, 2s+1, H, W) view of every shifted copy; one gather picks each image's own.
    windows = sliding_window_view(padded, (h, w), axis=(1, 2))
    dy, dx = rng.integers(0, 2 * s + 1, size=(2, n))
    return windows[np.arange(n), dy, dx]


def _inputs(
    images: np.ndarray,
    batches: list[np.ndarray],
    dtype: np.dtype,
    distort: Distortion | None,
    rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """The (B, 784) inputs of ``batches`` in order, distorted when ``distort`` is given.

    Distortions are computed one batch ahead on a second thread: the training step runs its
    products on one BLAS thread, so the other core is free, and NumPy releases the GIL in both.
    One worker draws from ``rng`` in batch order, so the result does not depend on timing.
    """

    def prepare(idx: np.ndarray) -> np.ndarray:
        xb = images[idx]  # (B, 28, 28) uint8
        if distort is not None:
            xb = distort(xb, rng)
        return to_unit(xb, dtype)

    if distort is None or not batches:
        yield from map(prepare, batches)
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(prepare, batches[0])
        for following in [*batches[1:], None]:
            ready = pending.result()
            if following is not None:
                pending = pool.submit(prepare, following)
            yield ready


@blas_threads()  # one BLAS thread for these small products (mnist_suite/threads.py)
def train_epoch(
    model: Sequential,
    loss_fn: NLLLoss,
    opt: SGD,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    rng: np.random.Generator,
    lr_at: Callable[[int], float],
    step: int = 0,
    max_shift: int = 0,
    augment_rng: np.random.Generator | None = None,
    distort: Distortion | None = None,
    average: WeightAverage | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[float, int]:
    """One shuffled pass of mini-batch SGD over ``images``; the ``mlp`` job's (and bench's) epoch.

    Parameters
    ----------
    images : ndarray of shape (n, 28, 28), uint8
        Scaled to [0, 1] per batch, in the model's dtype (cheaper than converting all at once).
    labels : ndarray of shape (n,), int
    lr_at : callable
        Learning rate of a global step.
    step : int
        Global step at the start of the epoch.
    max_shift : int
        Random shift augmentation in pixels (0 = none).
    augment_rng : numpy Generator, optional
        Draws the shifts and distortions; ``rng`` (which shuffles) when not given.
    distort : Distortion, optional
        Random affine/elastic distortion applied to each batch (uint8) before scaling.
    average : WeightAverage, optional
        Updated after every optimiser step.

    Returns
    -------
    (mean training loss of the epoch, global step at its end)

    Raises
    ------
    Diverged
        At the first step whose loss is not finite.
    """
    dtype = model.params[0].dtype
    x = random_shift(images, max_shift, augment_rng or rng) if max_shift else images
    batches = list(batch_indices(len(x), batch_size, rng))
    inputs = _inputs(x, batches, dtype, distort, augment_rng or rng)
    total, seen = 0.0, 0
    for idx, xb in zip(batches, inputs, strict=True):
        # A diverging run overflows before its loss turns nan; the check below reports it.
        with np.errstate(over="ignore", invalid="ignore"):
            loss = loss_fn.forward(model.forward(xb), labels[idx])
        if not math.isfinite(loss):
            raise Diverged(step, loss)
        model.backward(loss_fn.backward())
        opt.step(lr_at(step))
        if average is not None:
            average.update()
        total += loss * len(idx)
        seen += len(idx)
        step += 1
        if on_step is not None:
            on_step()
    return total / seen, step


def _accuracy(model: Sequential, x: np.ndarray, y: np.ndarray) -> float:
    return accuracy(model.predict_log_proba(x), y) if len(x) else float("nan")


def _dev_accuracy(run, model: Sequential, x_dev: np.ndarray, y_dev: np.ndarray) -> float:
    with run.evaluating():
        return _accuracy(model, x_dev, y_dev)


def _finish(run, model: Sequential, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Score the test set once; save the weights and the confusion matrix; log the result."""
    with run.evaluating():
        pred = model.predict_log_proba(x_test).argmax(axis=1)
    run.save_arrays("weights", **model_arrays(model))
    run.save_arrays("confusion", matrix=confusion(y_test, pred))
    return float(np.mean(pred == y_test))


@dataclass(frozen=True)
class MlpOriginalConfig:
    hidden: int = 10  # the original's 784-10-10
    iterations: int = 5000  # mini-batch steps, not epochs (the original's loop)
    batch_size: int = 100  # drawn with replacement each iteration
    lr: float = 1e-3  # on the *summed* loss: a mean-loss lr of 0.1 at batch 100
    init: str = "uniform"  # weights and biases U[-0.5, 0.5)
    n_dev: int = 1000  # training images held out, as the original held out the first 1000 rows
    eval_every: int = 250  # iterations between logged train loss / dev accuracy
    dtype: str = "float64"  # the original's weights were float64

    def __post_init__(self):
        _check_common(self.init, self.dtype, self.lr, self.batch_size)
        if self.hidden <= 0 or self.iterations <= 0 or self.eval_every <= 0:
            raise ParameterError(
                f"hidden={self.hidden}, iterations={self.iterations} and "
                f"eval_every={self.eval_every} must be > 0"
            )
        _check_split(self.batch_size, MNIST_TRAIN, self.n_dev)


@blas_threads()
def train_mlp_original(cfg: MlpOriginalConfig, run) -> dict:
    mnist = run.data()
    dtype = np.dtype(cfg.dtype)
    x_tr, y_tr, x_dev, y_dev = split_arrays(
        to_unit(mnist.x_train, dtype), mnist.y_train, cfg.n_dev, run.seed
    )
    x_test, y_test = to_unit(mnist.x_test, dtype), mnist.y_test
    rng = run.rng("order")
    model = mlp((784, cfg.hidden, 10), init=cfg.init, rng=run.rng("init"), dtype=dtype)
    loss_fn = NLLLoss("sum")
    opt = SGD(model.params, model.grads)
    progress = run.progress(cfg.iterations, cfg.batch_size)
    window_loss, window_steps = 0.0, 0
    # Batches are drawn with replacement: an epoch is a training set's worth of draws.
    steps_per_epoch = math.ceil(len(x_tr) / cfg.batch_size)
    # Both clocks leave out the dev evaluations made meanwhile.
    epoch_loss, epoch_clock = 0.0, run.training_clock()
    clock = run.training_clock()
    for it in range(1, cfg.iterations + 1):
        idx = rng.integers(0, len(x_tr), cfg.batch_size)  # with replacement, as the original drew
        with np.errstate(over="ignore", invalid="ignore"):  # divergence: reported just below
            loss = loss_fn.forward(model.forward(x_tr[idx]), y_tr[idx])
        run.check_finite(it, loss)
        model.backward(loss_fn.backward())
        opt.step(cfg.lr)
        window_loss += loss / cfg.batch_size  # per-sample mean, comparable across batch sizes
        window_steps += 1
        epoch_loss += loss / cfg.batch_size
        progress.update(1)
        if it % steps_per_epoch == 0:
            epoch_seconds = epoch_clock()
            run.log(
                it,
                epoch=it // steps_per_epoch,
                train_loss=epoch_loss / steps_per_epoch,
                dev_accuracy=_dev_accuracy(run, model, x_dev, y_dev),
                epoch_seconds=epoch_seconds,
            )
            epoch_loss, epoch_clock = 0.0, run.training_clock()
        if it % cfg.eval_every == 0 or it == cfg.iterations:
            train_loss = window_loss / window_steps
            dev_acc = _dev_accuracy(run, model, x_dev, y_dev)
            run.log(it, "step", train_loss=train_loss, dev_accuracy=dev_acc)
            progress.epoch(it // cfg.eval_every, train_loss=train_loss, dev_accuracy=dev_acc)
            window_loss, window_steps = 0.0, 0
    train_seconds = clock()
    progress.close()
    test_acc = _finish(run, model, x_test, y_test)
    run.log(cfg.iterations, "eval", test_accuracy=test_acc, dev_accuracy=dev_acc)
    with run.evaluating():
        train_acc = _accuracy(model, x_tr, y_tr)
    return {
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "dev_accuracy": dev_acc,
        "final_train_loss": train_loss,
        "parameters": int(sum(p.size for p in model.params)),
        "wall_seconds": run.elapsed(),
        "train_seconds": train_seconds,
        "samples_per_second": cfg.iterations * cfg.batch_size / train_seconds,
    }


@dataclass(frozen=True)
class MlpConfig:
    """The best NumPy recipe (≤ 5 min on 2 cores); ``MlpFastConfig`` is the 40-second one."""

    widths: tuple[int, ...] = (800, 800)  # hidden widths: 784-800-800-10
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1  # peak lr of the mean loss, reached after warm-up
    schedule: str = "cosine"  # constant | step | cosine
    warmup_epochs: float = 1.0  # linear warm-up: large early steps from He init can blow up
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4  # on weight matrices only
    dropout: float = 0.0  # after each hidden ReLU
    max_shift: int = 0  # random whole-pixel shifts per image per epoch (cheap; 0 = none)
    # Random distortion of every batch (mnist_suite.nn.Distortion): affine ranges, then Simard's
    # elastic field (alpha = 0: none). A fresh draw for every image at every epoch.
    rotate: float = 10.0  # degrees, ±
    zoom: float = 0.1  # each axis scaled by 1 ± zoom
    shear: float = 0.2  # ±
    translate: float = 2.0  # pixels, ±, sub-pixel
    # Displacement scale in pixels. Simard used 34 over hundreds of epochs; in 30 epochs it
    # underfits (clean train accuracy = test accuracy): 20 and 12 gave +0.20 pt dev (3 seeds).
    elastic_alpha: float = 20.0
    elastic_sigma: float = 4.0  # smoothing of the displacement field in pixels (Simard: 4)
    # 0.1 cost 0.09 pt dev against none (3 seeds, alpha 20): the distortions regularise enough.
    label_smoothing: float = 0.0
    # EMA decay of the weights, then evaluated and saved (0 = off): no gain on dev with a cosine
    # schedule that ends at lr 0 (2 seeds), and its update costs ~0.5 s an epoch.
    weight_average: float = 0.0
    eval_every: int = 0  # steps between extra dev evaluations (time to target); 0 = per epoch
    init: str = "he"  # he | glorot | uniform
    n_dev: int = 5000  # held out of the 60k for choices; test is scored once
    n_train: int = 0  # first n training images used (before the dev split); 0 = all
    dtype: str = "float32"

    def __post_init__(self):
        _check_common(self.init, self.dtype, self.lr, self.batch_size)
        if self.schedule not in SCHEDULES:
            raise ParameterError(
                f"unknown schedule {self.schedule!r} (expected one of {', '.join(SCHEDULES)})"
            )
        if self.epochs <= 0 or not all(w > 0 for w in self.widths):
            raise ParameterError(f"epochs={self.epochs} and widths={self.widths} must be > 0")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ParameterError(f"warmup_epochs={self.warmup_epochs} must be in [0, epochs)")
        if not 0 <= self.momentum < 1 or (self.nesterov and self.momentum == 0):
            raise ParameterError(f"momentum={self.momentum} must be in [0, 1) (> 0 for nesterov)")
        if self.weight_decay < 0 or not 0 <= self.dropout < 1 or not 0 <= self.max_shift <= 8:
            raise ParameterError(
                f"weight_decay={self.weight_decay} >= 0, dropout={self.dropout} in [0, 1), "
                f"max_shift={self.max_shift} in [0, 8] expected"
            )
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.weight_average < 1:
            raise ParameterError(
                f"label_smoothing={self.label_smoothing} and weight_average="
                f"{self.weight_average} must be in [0, 1)"
            )
        if self.eval_every < 0:
            raise ParameterError(f"eval_every={self.eval_every} must be >= 0 (0 = per epoch)")
        self.distortion()  # validates the ranges
        if not 0 <= self.n_train <= MNIST_TRAIN:
            raise ParameterError(f"n_train={self.n_train} must be in [0, {MNIST_TRAIN}] (0 = all)")
        _check_split(self.batch_size, self.n_train or MNIST_TRAIN, self.n_dev)

    def distortion(self) -> Distortion:
        return Distortion(
            rotate=self.rotate,
            zoom=self.zoom,
            shear=self.shear,
            translate=self.translate,
            alpha=self.elastic_alpha,
            sigma=self.elastic_sigma,
        )


@dataclass(frozen=True)
class MlpFastConfig(MlpConfig):
    """The light recipe: 784-512-256-10, whole-pixel shifts, 20 epochs (≈ 40 s)."""

    widths: tuple[int, ...] = (512, 256)
    epochs: int = 20
    batch_size: int = 256  # as accurate as 128 here, and half the steps' fixed costs
    lr: float = 0.2  # 0.1 at batch 128
    weight_decay: float = 5e-4
    max_shift: int = 2
    rotate: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    translate: float = 0.0
    elastic_alpha: float = 0.0
    label_smoothing: float = 0.0
    eval_every: int = 50  # a dev probe every 12,800 images: time to 98% to within ~0.4 s


@dataclass(frozen=True)
class MlpSprintConfig(MlpFastConfig):
    """The sprint to 98% dev accuracy: ``mlp-fast``'s net with no augmentation, a few epochs.

    Shifts cost time and slow the early epochs; a short cosine schedule ends its steps small
    enough that every seed passes 98% dev (the dev probe every 50 steps times it).
    """

    epochs: int = 6
    max_shift: int = 0


def _kept_dev_accuracy(
    run, model: Sequential, average: WeightAverage | None, x: np.ndarray, y: np.ndarray
) -> float:
    """Dev accuracy of the weights the run keeps: the average when there is one."""
    if average is None:
        return _dev_accuracy(run, model, x, y)
    with average.swapped():
        return _dev_accuracy(run, model, x, y)


@dataclass
class Recipe:
    """What an ``mlp`` run trains with, built from its config by :func:`build_recipe`.

    The job and the epoch benchmark both build it, so a change to the recipe changes what the
    benchmark measures.
    """

    model: Sequential
    loss_fn: NLLLoss
    opt: SGD
    lr_at: Callable[[int], float]
    distort: Distortion | None
    average: WeightAverage | None
    steps_per_epoch: int
    cfg: MlpConfig
    rng: np.random.Generator  # shuffles
    augment_rng: np.random.Generator  # shifts and distortions

    def epoch(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        step: int = 0,
        on_step: Callable[[], None] | None = None,
    ) -> tuple[float, int]:
        """One epoch over ``images`` (n, 28, 28) uint8: (mean training loss, global step after)."""
        return train_epoch(
            self.model,
            self.loss_fn,
            self.opt,
            images,
            labels,
            batch_size=self.cfg.batch_size,
            rng=self.rng,
            lr_at=self.lr_at,
            step=step,
            max_shift=self.cfg.max_shift,
            augment_rng=self.augment_rng,
            distort=self.distort,
            average=self.average,
            on_step=on_step,
        )


def build_recipe(cfg: MlpConfig, n_train: int, rng: Callable[[str], np.random.Generator]) -> Recipe:
    """Model, loss, optimiser, schedule, distortion and averaging of an ``mlp`` run.

    ``n_train`` is the number of training images (after the dev split); ``rng(stream)`` gives
    the run's named random streams (``init``, ``order``, ``augment``).
    """
    dtype = np.dtype(cfg.dtype)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    lr_at = make_schedule(
        cfg.schedule,
        cfg.lr,
        total_steps,
        warmup_steps=round(cfg.warmup_epochs * steps_per_epoch),
        step_every=max(1, total_steps // 3),  # the step schedule: ×0.1 at 1/3 and 2/3
    )
    # Dropout masks are drawn from the init stream (mnist_suite.nn.mlp hands its layers one rng).
    model = mlp(
        (784, *cfg.widths, 10), init=cfg.init, rng=rng("init"), dtype=dtype, dropout=cfg.dropout
    )
    opt = SGD(
        model.params,
        model.grads,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    distort = cfg.distortion()
    return Recipe(
        model=model,
        loss_fn=NLLLoss("mean", smoothing=cfg.label_smoothing),
        opt=opt,
        lr_at=lr_at,
        distort=distort if distort.active else None,
        average=WeightAverage(model.params, cfg.weight_average) if cfg.weight_average else None,
        steps_per_epoch=steps_per_epoch,
        cfg=cfg,
        rng=rng("order"),
        augment_rng=rng("augment"),
    )


def train_mlp(cfg: MlpConfig, run) -> dict:
    mnist = run.data()
    dtype = np.dtype(cfg.dtype)
    n = cfg.n_train or len(mnist.x_train)
    img_tr, y_tr, img_dev, y_dev = split_arrays(
        mnist.x_train[:n], mnist.y_train[:n], cfg.n_dev, run.seed
    )
    x_dev = to_unit(img_dev, dtype)
    x_test, y_test = to_unit(mnist.x_test, dtype), mnist.y_test
    recipe = build_recipe(cfg, len(img_tr), run.rng)
    model, average, lr_at = recipe.model, recipe.average, recipe.lr_at
    total_steps = cfg.epochs * recipe.steps_per_epoch
    progress = run.progress(total_steps, cfg.batch_size)
    step, train_seconds = 0, 0.0
    probe = {"step": 0}

    def on_step() -> None:
        progress.update(1)
        probe["step"] += 1
        if cfg.eval_every and probe["step"] % cfg.eval_every == 0:
            # Finer than per epoch, for the time to a dev-accuracy target.
            dev = _kept_dev_accuracy(run, model, average, x_dev, y_dev)
            run.log(probe["step"], "step", dev_accuracy=dev)

    for epoch in range(1, cfg.epochs + 1):
        clock = run.training_clock()  # the dev probes (eval_every) left out
        train_loss, step = recipe.epoch(img_tr, y_tr, step, on_step)
        epoch_seconds = clock()
        train_seconds += epoch_seconds
        dev_acc = _kept_dev_accuracy(run, model, average, x_dev, y_dev)
        run.log(
            step,
            epoch=epoch,
            train_loss=train_loss,
            dev_accuracy=dev_acc,
            lr=lr_at(step - 1),
            epoch_seconds=epoch_seconds,
        )
        progress.epoch(epoch, train_loss=train_loss, dev_accuracy=dev_acc)
    progress.close()
    live_dev = _dev_accuracy(run, model, x_dev, y_dev)
    if average is not None:
        # The run keeps (saves, scores) the averaged weights.
        for p, avg in zip(model.params, average.average, strict=True):
            np.copyto(p, avg)
    test_acc = _finish(run, model, x_test, y_test)
    run.log(step, "eval", test_accuracy=test_acc, dev_accuracy=dev_acc)
    with run.evaluating():
        train_acc = _accuracy(model, to_unit(img_tr, dtype), y_tr)
    return {
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "dev_accuracy": dev_acc,
        "dev_accuracy_last_iterate": live_dev,
        "final_train_loss": train_loss,
        "parameters": int(sum(p.size for p in model.params)),
        "wall_seconds": run.elapsed(),
        "train_seconds": train_seconds,
        "samples_per_second": cfg.epochs * len(img_tr) / train_seconds,
    }


# The mlp jobs' TensorBoard scalars: their dev probes (eval_every) are step/ rows.
MLP_SCALARS = (
    "step/dev_accuracy",
    *CLASSIFIER_EPOCH,
    "epoch/lr",
    *CLASSIFIER_EVAL,
    *TARGET_SCALARS,
    *RUN_SCALARS,
)
register(
    Job(
        name="mlp-original",
        seconds=(3.0, 3.0),
        summary="original scratch MLP 784-10-10: uniform init, sum NLL, SGD 1e-3 (≈92.5%)",
        config=MlpOriginalConfig,
        train=train_mlp_original,
        quick={"iterations": 1000},
        # Its evaluation every eval_every steps: step/ rows.
        scalars=(
            "step/train_loss",
            "step/dev_accuracy",
            *CLASSIFIER_EPOCH,
            *CLASSIFIER_EVAL,
            *TARGET_SCALARS,
            *RUN_SCALARS,
        ),
        # The saved weights scored on the standard test set, given as "about" (no precision).
        original_figures={"test_accuracy": "about 92.5%"},
    )
)
register(
    Job(
        name="mlp",
        seconds=(5.0, 155.0),
        summary="best NumPy MLP 784-800-800-10 with elastic+affine distortions (≤ 5 min)",
        config=MlpConfig,
        train=train_mlp,
        quick={"epochs": 3, "n_train": 10000, "n_dev": 1000, "widths": (256,)},
        scalars=MLP_SCALARS,
        improves_on="mlp-original",
    )
)
register(
    Job(
        name="mlp-fast",
        seconds=(5.0, 32.0),
        summary="fast NumPy MLP 784-512-256-10: Nesterov, cosine+warm-up, shifts (≈ 99.0%, 40 s)",
        config=MlpFastConfig,
        train=train_mlp,
        quick={"epochs": 3, "n_train": 10000, "n_dev": 1000},
        scalars=MLP_SCALARS,
        improves_on="mlp-original",
    )
)
register(
    Job(
        name="mlp-sprint",
        seconds=(3.0, 10.0),
        summary="sprint to 98% dev: mlp-fast's 784-512-256-10, no augmentation, 6 epochs (≈ 8 s)",
        config=MlpSprintConfig,
        train=train_mlp,
        quick={"epochs": 2, "n_train": 10000, "n_dev": 1000},
        scalars=MLP_SCALARS,
        improves_on="mlp-original",
    )
)
