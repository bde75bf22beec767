"""The original's custom TensorFlow SGD loop: its experiment, its learning-rate sweep, and its grid.

``sgd-original`` reproduces the original notebook (784-32-32-10, sum-reduced cross-entropy on
probabilities, lr 0.01, batch 32, 5 epochs: 96.08% test). ``sgd-lr-sweep`` is its 1-epoch
sweep over lr 0.1 / 0.01 / 0.001, every batch loss kept for the figure. Both train on all
60,000 images as the original did (no dev split) and score the test set once, at the end.
``sgd-grid`` is the grid the original promised and never ran: lr x batch size x net, mean
reduction, 10 epochs per run on the training set minus the run's dev split; each cell keeps the
epoch with the best dev accuracy (early stopping on dev) and scores the test set once, with
that epoch's weights. The report picks the cell on dev. TensorFlow is imported inside ``train``
only (``mnist_suite.tfsgd.loop``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from mnist_suite.data import to_unit
from mnist_suite.data.split import split_arrays
from mnist_suite.errors import ParameterError
from mnist_suite.jobs import Job, register
from mnist_suite.tb import RUN_SCALARS, TARGET_SCALARS
from mnist_suite.tfsgd import REDUCTIONS, UPDATES, parse_net

LN10 = math.log(10.0)  # the loss of a uniform guess over 10 classes
STUCK_TOLERANCE = 0.05  # a final loss this close to ln 10 means the net predicts chance


@dataclass(frozen=True)
class SgdConfig:
    lr: float = 0.01  # the original's; with sum reduction the mean-loss step is batch_size * lr
    batch_size: int = 32  # the original's (the only batch size it ran)
    epochs: int = 5  # the original's
    widths: tuple[int, ...] = (32, 32)  # hidden layers; the original's 784-32-32-10
    reduction: str = "sum"  # "sum" (the original: the tape differentiates the batch sum) or "mean"
    momentum: float = 0.0  # the original used plain SGD
    update: str = "assign_sub"  # compiled in-place update; "set_weights" is the original's (slow)
    n_train: int = 0  # first n training images (0 = all 60,000)
    n_dev: int = 0  # of those, held out as the run's dev split (0: none, as the original)
    log_batches: bool = True  # every batch loss to history.jsonl and TensorBoard
    threads: int = 0  # TensorFlow intra/inter-op threads (0 = its default)

    def __post_init__(self):
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ParameterError(f"lr={self.lr} must be a finite number > 0")
        if self.batch_size <= 0:
            raise ParameterError(f"batch_size={self.batch_size} must be > 0")
        if self.epochs <= 0:
            raise ParameterError(f"epochs={self.epochs} must be > 0")
        if not self.widths or min(self.widths) <= 0:
            raise ParameterError(f"widths={self.widths} must be one or more positive layer sizes")
        if self.reduction not in REDUCTIONS:
            raise ParameterError(
                f"reduction={self.reduction!r} is unknown (expected one of {', '.join(REDUCTIONS)})"
            )
        if self.update not in UPDATES:
            raise ParameterError(
                f"update={self.update!r} is unknown (expected one of {', '.join(UPDATES)})"
            )
        if not 0 <= self.momentum < 1:
            raise ParameterError(f"momentum={self.momentum} must be in [0, 1)")
        if self.momentum and self.update == "set_weights":
            raise ParameterError("update=set_weights (the original's) supports momentum=0 only")
        if not 0 <= self.n_train <= 60_000:
            raise ParameterError(f"n_train={self.n_train} must be in [0, 60000] (0 = all)")
        n = self.n_train or 60_000
        if not 0 <= self.n_dev < n or self.batch_size > n - self.n_dev:
            raise ParameterError(
                f"n_dev={self.n_dev} must be in [0, {n}) and leave batch_size={self.batch_size} "
                "training samples"
            )
        if self.threads < 0:
            raise ParameterError(f"threads={self.threads} must be >= 0 (0 = TensorFlow's default)")


@dataclass(frozen=True)
class SweepConfig:
    lrs: tuple[float, ...] = (0.1, 0.01, 0.001)  # the original's sweep
    batch_size: int = 32
    epochs: int = 1  # the original's sweep ran one epoch
    widths: tuple[int, ...] = (32, 32)
    reduction: str = "sum"
    n_train: int = 0
    threads: int = 0

    def __post_init__(self):
        if not self.lrs:
            raise ParameterError("lrs is empty: the sweep needs at least one learning rate")
        for lr in self.lrs:  # each cell validates the rest; check the axis now, before any run
            self.cell(lr)

    def cell(self, lr: float) -> SgdConfig:
        return SgdConfig(
            lr=lr,
            batch_size=self.batch_size,
            epochs=self.epochs,
            widths=self.widths,
            reduction=self.reduction,
            n_train=self.n_train,
            threads=self.threads,
        )


@dataclass(frozen=True)
class GridConfig:
    lrs: tuple[float, ...] = (0.3, 0.1, 0.03)  # mean-loss step sizes
    batch_sizes: tuple[int, ...] = (32, 128, 512)
    nets: tuple[str, ...] = ("32-32", "512-256")  # hidden widths; the original's net and a wide one
    epochs: int = 10  # every run trains this long; the epoch with the best dev accuracy is kept
    reduction: str = "mean"  # comparable step sizes across batch sizes
    momentum: float = 0.0
    n_train: int = 0
    n_dev: int = 5000  # the run's dev split: every choice (epoch, cell) is made on it
    threads: int = 0

    def __post_init__(self):
        if not (self.lrs and self.batch_sizes and self.nets):
            raise ParameterError(
                f"empty grid: lrs={self.lrs}, batch_sizes={self.batch_sizes}, nets={self.nets} "
                "must each have at least one value"
            )
        for net in self.nets:
            try:
                parse_net(net)
            except ValueError as exc:
                raise ParameterError(f"nets: {exc}") from None
        for lr in self.lrs:
            for batch_size in self.batch_sizes:
                self.cell(lr, batch_size, self.nets[0])

    def cell(self, lr: float, batch_size: int, net: str) -> SgdConfig:
        return SgdConfig(
            lr=lr,
            batch_size=batch_size,
            epochs=self.epochs,
            widths=parse_net(net),
            reduction=self.reduction,
            momentum=self.momentum,
            n_train=self.n_train,
            n_dev=self.n_dev,
            log_batches=False,  # the grid compares epochs; batch curves would swamp TensorBoard
            threads=self.threads,
        )


def sweep_cells(cfg: SweepConfig) -> list[tuple[str, SgdConfig]]:
    return [(f"lr{lr:g}", cfg.cell(lr)) for lr in cfg.lrs]


def grid_cells(cfg: GridConfig) -> list[tuple[str, SgdConfig]]:
    return [
        (f"net{net}-b{bs}-lr{lr:g}", cfg.cell(lr, bs, net))
        for net in cfg.nets
        for bs in cfg.batch_sizes
        for lr in cfg.lrs
    ]


def train_sgd(cfg: SgdConfig, run) -> dict:
    from mnist_suite.tfsgd import loop as tf_sgd

    # Before any TF op: threads, then TensorFlow seeded from the run's "tf" stream.
    tf_sgd.configure(run.seed, cfg.threads)
    mnist = run.data()
    n = cfg.n_train or len(mnist.x_train)
    x_np, y_np, x_dev_np, y_dev_np = split_arrays(
        to_unit(mnist.x_train[:n]), mnist.y_train[:n], cfg.n_dev, run.seed
    )
    x, y = tf_sgd.to_tensors(x_np, y_np)  # (n - n_dev, 784), (n - n_dev,)
    x_dev, y_dev = tf_sgd.to_tensors(x_dev_np, y_dev_np)
    x_test, y_test = tf_sgd.to_tensors(to_unit(mnist.x_test), mnist.y_test)
    n_fit = len(y_np)
    # This process's graphs of the shape, if it traced them already; fresh weights either way.
    trainer = tf_sgd.trainer(
        cfg.widths, cfg.lr, cfg.batch_size, cfg.reduction, cfg.momentum, cfg.update
    )
    model = trainer.model
    rng = run.rng("order")
    with run.evaluating():
        untrained_loss, _ = trainer.evaluate(x, y)
    run.log(0, epoch=0, train_loss=untrained_loss)
    steps_per_epoch = math.ceil(n_fit / cfg.batch_size)
    progress = run.progress(cfg.epochs * steps_per_epoch, cfg.batch_size)
    batch_losses: list[np.ndarray] = []
    by_epoch: dict[str, list[float]] = {
        k: [] for k in ("train_loss", "train_accuracy", "dev_loss", "dev_accuracy", "epoch_seconds")
    }
    best_weights, best = None, -1  # the epoch kept: best dev accuracy (the last without dev)
    train_seconds = 0.0
    step = 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            losses = trainer.train_epoch(x, y, rng.permutation(n_fit))  # (steps,) batch means
            epoch_seconds = time.perf_counter() - start  # the epoch's training, evaluation apart
            train_seconds += epoch_seconds
            batch_losses.append(losses)
            if cfg.log_batches:
                for i, loss in enumerate(losses, start=step + 1):
                    run.log(i, "step", train_loss=float(loss))
            # The epoch stops at the first non-finite batch loss: that batch is the step.
            run.check_finite(step + len(losses), float(losses[-1]))
            step += len(losses)
            progress.update(len(losses), loss=float(losses[-1]))
            # The original printed the full-training-set mean loss after every epoch.
            with run.evaluating():
                train_loss, train_acc = trainer.evaluate(x, y)
                dev_loss, dev_acc = (
                    trainer.evaluate(x_dev, y_dev) if cfg.n_dev else (float("nan"),) * 2
                )
            run.check_finite(step, train_loss)
            values = {"train_loss": train_loss, "train_accuracy": train_acc}
            if cfg.n_dev:
                values.update(dev_loss=dev_loss, dev_accuracy=dev_acc)
            values["epoch_seconds"] = epoch_seconds
            for k, v in values.items():
                by_epoch[k].append(v)
            if not cfg.n_dev or best < 0 or dev_acc > by_epoch["dev_accuracy"][best]:
                best = epoch - 1
                best_weights = model.get_weights() if cfg.n_dev else None
            run.log(step, epoch=epoch, **values)
            progress.epoch(epoch, **{k: v for k, v in values.items() if k != "epoch_seconds"})
    finally:
        progress.close()
        # Kept whatever happens: the sweep's figure needs the diverging run's curve too.
        run.save_arrays(
            "batch_losses",
            loss=np.concatenate(batch_losses) if batch_losses else np.zeros(0, np.float32),
            steps_per_epoch=np.int64(steps_per_epoch),
        )
    if best_weights is not None:
        model.set_weights(best_weights)  # early stopping on dev: the kept epoch's weights
    with run.evaluating():
        test_loss, test_acc = trainer.evaluate(x_test, y_test)  # the one look at the test set
    final = {"test_accuracy": test_acc, "test_loss": test_loss}
    if cfg.n_dev:
        final["dev_accuracy"] = by_epoch["dev_accuracy"][best]
    run.log(step, "eval", **final)
    wall = run.elapsed()
    dev = {}
    if cfg.n_dev:
        dev = {
            "dev_accuracy": by_epoch["dev_accuracy"][best],
            "dev_loss": by_epoch["dev_loss"][best],
            "dev_accuracy_by_epoch": by_epoch["dev_accuracy"],
            "n_dev": cfg.n_dev,
        }
    return {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        **dev,
        "best_epoch": best + 1,
        "selected_on": "dev" if cfg.n_dev else "last epoch (no dev split, as the original)",
        "train_accuracy": by_epoch["train_accuracy"][-1],
        "final_train_loss": by_epoch["train_loss"][-1],
        "final_batch_loss": float(batch_losses[-1][-1]),
        "untrained_train_loss": untrained_loss,
        "stuck_at_chance": abs(by_epoch["train_loss"][-1] - LN10) < STUCK_TOLERANCE,
        "train_loss_by_epoch": by_epoch["train_loss"],
        "epoch_seconds": by_epoch["epoch_seconds"],
        "steps": step,
        "parameters": tf_sgd.count_params(model),
        "train_seconds": round(train_seconds, 3),
        "wall_seconds": wall,
        "samples_per_second": cfg.epochs * n_fit / train_seconds,
        **tf_sgd.thread_settings(),
    }


def train_grid_cell(cfg: SgdConfig, run) -> dict:
    return train_sgd(cfg, run)


# TensorBoard scalars of every run, of its batch losses (log_batches) and of a dev split.
SGD_SCALARS = (
    "epoch/train_loss",
    "epoch/train_accuracy",
    "epoch/epoch_seconds",
    "eval/test_accuracy",
    "eval/test_loss",
    *RUN_SCALARS,
)
BATCH_SCALARS = ("step/train_loss",)
DEV_SCALARS = ("epoch/dev_loss", "epoch/dev_accuracy", "eval/dev_accuracy", *TARGET_SCALARS)


register(
    Job(
        name="sgd-original",
        seconds=(15.0, 5.0),
        summary="original TF GradientTape SGD, 784-32-32-10, lr 0.01, batch 32, 5 epochs (96.08%)",
        config=SgdConfig,
        train=train_sgd,
        quick={"epochs": 1, "n_train": 6000},
        scalars=(*SGD_SCALARS, *BATCH_SCALARS, *DEV_SCALARS),
        uses_tensorflow=True,
        original_figures={
            "test_accuracy": "96.08%",
            "test_loss": "0.1726",
            "final_train_loss": "0.0870",
        },
        dev_note="no dev split (the original had none): the last epoch is tested",
    )
)
register(
    Job(
        name="sgd-lr-sweep",
        seconds=(15.0, 3.0),
        summary="original's 1-epoch lr sweep 0.1/0.01/0.001, sum loss, every batch loss kept",
        config=SweepConfig,
        train=train_sgd,
        quick={"n_train": 3200},
        cells=sweep_cells,
        scalars=(*SGD_SCALARS, *BATCH_SCALARS),
        uses_tensorflow=True,
        # The full-training-set mean loss after one epoch; lr 0.1 diverged (stuck near ln 10).
        original_figures={
            "lr0.1:final_train_loss": "2.3107",
            "lr0.01:final_train_loss": "0.1689",
            "lr0.001:final_train_loss": "0.2568",
        },
        dev_note="no dev split (the original had none): one epoch, then the test set",
    )
)
register(
    Job(
        name="sgd-grid",
        seconds=(15.0, 10.0),
        summary="lr x batch {32,128,512} x net grid, 10 epochs each, mean loss, TB HParams",
        config=GridConfig,
        train=train_grid_cell,
        quick={
            "lrs": (0.1,),
            "batch_sizes": (32, 128),
            "nets": ("32-32",),
            "epochs": 2,
            "n_train": 4000,
            "n_dev": 1000,
        },
        cells=grid_cells,
        scalars=(*SGD_SCALARS, *DEV_SCALARS),
        uses_tensorflow=True,
        improves_on="sgd-original",
        # 18 cells x 10 epochs (~325 s a seed on 2 cores): 3 seeds keep the full suite near
        # half an hour and still give each cell a t-interval (2 degrees of freedom).
        seed_count=3,
    )
)
