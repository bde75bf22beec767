"""``logreg``: multinomial logistic (softmax) regression on MNIST in NumPy, a mnist-suite job
that lives outside the suite.

The package declares the entry point ``logreg = "logreg_job:JOB"`` in the group
``mnist_suite.jobs``; once it is installed, ``mnist-suite run logreg`` runs it like any job:
seeds, profiles, ``--set`` overrides, run folders, compare and the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_suite.data import batch_indices, split_arrays, to_unit
from mnist_suite.errors import ParameterError
from mnist_suite.jobs import Job
from mnist_suite.metrics import accuracy, confusion
from mnist_suite.nn import log_softmax
from mnist_suite.tb import CLASSIFIER_EPOCH, CLASSIFIER_EVAL, RUN_SCALARS, TARGET_SCALARS


@dataclass(frozen=True)
class LogregConfig:
    """Defaults are the full profile; every field can be set with ``--set key=value``."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.2  # constant step size of plain SGD on the mean cross-entropy
    l2: float = 1e-4  # weight decay added to the gradient of W
    n_dev: int = 5000  # held out of the training set; test is read once, at the end
    n_train: int = 0  # training images used (before the dev split); 0 = all 60,000

    def __post_init__(self):
        # ParameterError: the command line says which value, in one line, and runs nothing.
        if self.epochs <= 0 or self.batch_size <= 0:
            raise ParameterError(f"epochs={self.epochs}, batch_size={self.batch_size}: must be > 0")
        if not self.lr > 0:
            raise ParameterError(f"lr={self.lr}: must be > 0")
        if self.l2 < 0:
            raise ParameterError(f"l2={self.l2}: must be >= 0")
        if not 0 <= self.n_train <= 60_000:
            raise ParameterError(f"n_train={self.n_train}: must be from 0 (all) to 60000")


def train(cfg: LogregConfig, run) -> dict:
    """Fit W (784, 10) and b (10,) by mini-batch SGD; return the run's figures."""
    mnist = run.data()  # verified MNIST, loaded once per process
    n = cfg.n_train or len(mnist.x_train)
    x_tr, y_tr, x_dev, y_dev = split_arrays(
        to_unit(mnist.x_train[:n]), mnist.y_train[:n], cfg.n_dev, run.seed
    )
    W, b = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)  # convex: zeros will do
    order = run.rng("order")  # every random stream comes from the run's seed
    step = 0  # optimizer steps: the x axis of every history row and TensorBoard scalar
    start = run.elapsed()  # the training clock starts after the data is read
    for epoch in range(1, cfg.epochs + 1):
        epoch_start, losses = run.elapsed(), []
        for idx in batch_indices(len(x_tr), cfg.batch_size, order):
            xb, yb = x_tr[idx], y_tr[idx]  # (B, 784), (B,)
            logp = log_softmax(xb @ W + b)  # (B, 10)
            losses.append(-logp[np.arange(len(yb)), yb].mean())
            grad = np.exp(logp)
            grad[np.arange(len(yb)), yb] -= 1.0
            grad /= len(yb)  # d(mean loss)/d(scores), (B, 10)
            W -= np.float32(cfg.lr) * (xb.T @ grad + np.float32(cfg.l2) * W)
            b -= np.float32(cfg.lr) * grad.sum(axis=0)
            step += 1
        train_loss = float(np.mean(losses))
        run.check_finite(step, train_loss)  # a non-finite loss ends the run "diverged"
        epoch_seconds = run.elapsed() - epoch_start
        with run.evaluating():  # evaluation time is reported, not hidden in the clock
            dev_accuracy = accuracy(x_dev @ W + b, y_dev) if len(x_dev) else float("nan")
        # One history row per epoch (TensorBoard too); dev_accuracy feeds time to target.
        run.log(
            step,
            epoch=epoch,
            train_loss=train_loss,
            dev_accuracy=dev_accuracy,
            epoch_seconds=epoch_seconds,
        )
    train_seconds = run.elapsed() - start
    scores = to_unit(mnist.x_test) @ W + b  # (10000, 10)
    test_accuracy = accuracy(scores, mnist.y_test)
    run.log(step, "eval", test_accuracy=test_accuracy, dev_accuracy=dev_accuracy)
    run.save_arrays("confusion", matrix=confusion(mnist.y_test, scores.argmax(axis=1)))
    return {
        "test_accuracy": test_accuracy,
        "dev_accuracy": dev_accuracy,
        "train_accuracy": accuracy(x_tr @ W + b, y_tr),
        "final_train_loss": train_loss,
        "train_seconds": train_seconds,
    }


JOB = Job(
    name="logreg",
    summary="NumPy logistic (softmax) regression, plain mini-batch SGD (a plugin job)",
    config=LogregConfig,
    train=train,
    quick={"epochs": 2, "n_train": 12000, "n_dev": 2000},
    seconds=(3.0, 15.0),
    # What its runs write to TensorBoard (names of mnist_suite.tb.SCALARS): its HParams metrics.
    scalars=(*CLASSIFIER_EPOCH, *CLASSIFIER_EVAL, *TARGET_SCALARS, *RUN_SCALARS),
    metrics={
        "test_accuracy": "fraction of the 10,000 test images classified right, read once",
        "dev_accuracy": "fraction of the held-out dev images classified right, last epoch",
        "train_accuracy": "fraction of the training images classified right, at the end",
        "final_train_loss": "mean cross-entropy (nats) of the last epoch's mini-batches",
        "train_seconds": "seconds of the training loop, data reading excluded",
    },
)
