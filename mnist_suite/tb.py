"""TensorBoard event files without TensorFlow, the scalar names every job writes, and HParams.

``tensorboard.summary.writer.EventFileWriter`` imports TensorFlow when it is installed; the
NumPy jobs must not, so this writes the record file itself with ``RecordWriter`` (which frames
and checksums records) and the ``event_pb2`` / ``summary_pb2`` / HParams protos.

TensorBoard's layout: ``RUNS/<job>/`` is one HParams experiment (its summary written there by
:func:`write_experiment`: the job's own hparams and metrics), each run's ``tb/`` one session of
it, and the seeds of one configuration one session group. ``tensorboard --logdir RUNS/<job>``
shows a job's HParams; the runs root shows every run's scalars and images.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.summary.writer.record_writer import RecordWriter

from mnist_suite.files import atomic_file, read_bounded
from mnist_suite.targets import TARGETS, target_key

# The scalar names of every job: ``<kind>/<name>``, the kind saying when a value is written and
# the name what it is. A job writes the ones it has, never another name (a test runs every job).
# Each is one value of a ``history.jsonl`` row of that kind, under the same name, except the
# ``target/`` and ``run/`` ones, which the runner writes. TensorBoard's step is the optimizer
# step (the row's ``step``) for every kind but ``latent/`` (the latent size) and ``run/`` (0).
SCALARS: dict[str, str] = {
    # Once per epoch (one pass over the training set), at the step the epoch ended on.
    "epoch/train_loss": "training loss per sample: the mean over the epoch's batches, or the "
    "whole training set's after it where the original printed that (sgd-*, softmax-original)",
    "epoch/train_accuracy": "training-set accuracy after the epoch",
    "epoch/dev_loss": "dev-split loss per sample after the epoch",
    "epoch/dev_accuracy": "dev-split accuracy after the epoch, of the weights the run keeps",
    "epoch/dev_mse": "dev-split reconstruction MSE after the epoch, in the model's input units",
    "epoch/dev_mse_pixels": "dev-split reconstruction MSE after the epoch, pixels in [0, 1]",
    "epoch/test_mse": "ae-original: test-set MSE after the epoch (the original validated on "
    "test), in the model's input units",
    "epoch/test_mse_pixels": "ae-original: test-set MSE after the epoch, pixels in [0, 1]",
    "epoch/lr": "learning rate of the epoch's last step",
    "epoch/epoch_seconds": "wall seconds of the epoch's training (PCA: its one fit)",
    # Within epochs, at an optimizer step.
    "step/train_loss": "training loss per sample: the batch's (sgd-*), the mean since the last "
    "row (mlp-original), or the whole training set's (softmax-original)",
    "step/train_accuracy": "softmax-original: training-set accuracy during its epoch",
    "step/test_accuracy": "softmax-original: test accuracy during its epoch, as the original "
    "printed it",
    "step/dev_accuracy": "dev-split accuracy between epochs (the time to a target)",
    # PCA, per latent size k (TensorBoard's step is k).
    "latent/test_mse": "PCA: test-set reconstruction MSE at k components, in its input units",
    "latent/test_mse_pixels": "PCA: test-set reconstruction MSE at k components, pixels in [0, 1]",
    "latent/fvu": "PCA: fraction of the test set's variance unexplained at k components",
    "latent/explained_variance_ratio_sum": "PCA: training variance explained by k components",
    # The one scoring of the weights the run keeps, at its last step.
    "eval/test_accuracy": "test accuracy, scored once",
    "eval/test_loss": "test loss per sample, scored once",
    "eval/dev_accuracy": "dev-split accuracy of the weights the run keeps",
    "eval/test_mse": "test-set reconstruction MSE, in the model's input units",
    "eval/test_mse_pixels": "test-set reconstruction MSE, pixels in [0, 1]",
    # The runner's: wall seconds from the run's start to each dev-accuracy target, when reached.
    **{
        f"target/seconds_to_{target_key(t)}": f"wall seconds to the first dev accuracy >= {t:g}"
        for t in TARGETS
    },
    # The runner's, from metrics.json, at step 0.
    "run/parameters": "trainable parameters of the model",
    "run/train_seconds": "wall seconds of the training loop (data, set-up, evaluation apart)",
    "run/wall_seconds": "wall seconds of the whole run",
}
# Sets many jobs share (each job declares its own, Job.scalars).
CLASSIFIER_EPOCH = ("epoch/train_loss", "epoch/dev_accuracy", "epoch/epoch_seconds")
CLASSIFIER_EVAL = ("eval/test_accuracy", "eval/dev_accuracy")
TARGET_SCALARS = tuple(name for name in SCALARS if name.startswith("target/"))
RUN_SCALARS = tuple(name for name in SCALARS if name.startswith("run/"))


class SummaryWriter:
    """Write scalars, images and HParams to ``logdir/events.out.tfevents.*``.

    Parameters
    ----------
    logdir : Path
        Folder for the event file (created).
    """

    def __init__(self, logdir: str | Path):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.logdir / name
        self._file = open(self.path, "wb")  # noqa: SIM115 - lives as long as the writer
        self._records = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: event_pb2.Event) -> None:
        self._records.write(event.SerializeToString())

    def _summary(self, summary: summary_pb2.Summary, step: int) -> None:
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def scalar(self, tag: str, value: float, step: int) -> None:
        value = summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        self._summary(summary_pb2.Summary(value=[value]), step)

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        summary = summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(tag=prefix + k, simple_value=float(v))
                for k, v in values.items()
            ]
        )
        self._summary(summary, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An image of shape (H, W) or (H, W, 3); floats are taken as [0, 1] and clipped."""
        from PIL import Image  # matplotlib's dependency; imported lazily, it is not cheap

        img = np.asarray(image)
        if img.dtype != np.uint8:
            img = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        channels = 1 if img.ndim == 2 else img.shape[2]
        proto = summary_pb2.Summary.Image(
            height=img.shape[0],
            width=img.shape[1],
            colorspace=channels,
            encoded_image_string=buf.getvalue(),
        )
        self._summary(
            summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=proto)]), step
        )

    def session_start(self, hparams: dict[str, Any], start_time: float) -> None:
        """Make this logdir an HParams session with ``hparams`` (bool, number or str each).

        Its group is named by the hparams' hash: sessions with equal hparams form one group.
        """
        self._summary(hp.hparams_pb(hparams, start_time_secs=start_time), 0)

    def session_end(self, status: int, end_time: float | None = None) -> None:
        """The session's ``api_pb2.Status``; TensorBoard keeps the first one a logdir holds."""
        info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=end_time or 0.0)
        data = plugin_data_pb2.HParamsPluginData(session_end_info=info)
        self._summary(_plugin_summary(metadata.SESSION_END_INFO_TAG, data), 0)

    def flush(self) -> None:
        self._records.flush()
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._records.close()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plugin_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    """A summary holding HParams plugin data, as ``summary_v2`` builds its own."""
    value = summary_pb2.Summary.Value(
        tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )
    return summary_pb2.Summary(value=[value])


def run_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The ``run/`` scalars of a finished run's metrics (those it has, finite)."""
    values = {name: metrics.get(name.removeprefix("run/")) for name in SCALARS}
    return {
        name: float(v)
        for name, v in values.items()
        if name.startswith("run/")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and np.isfinite(v)
    }


def revision(commit: dict) -> str:
    """A run's ``revision`` hparam from its ``commit_info``: the commit's first 12 hex digits,
    with ``-dirty`` when the tree had uncommitted changes, or ``unknown`` outside git."""
    sha = commit.get("id")
    if not isinstance(sha, str) or not sha:
        return "unknown"
    return sha[:12] + ("-dirty" if commit.get("dirty") else "")


# How each run state reads in TensorBoard. Its Status has no "aborted": an interrupted run
# neither succeeded nor failed, so it is UNKNOWN (a run without an end, to TensorBoard).
STATUS = {
    "done": api_pb2.STATUS_SUCCESS,
    "diverged": api_pb2.STATUS_FAILURE,
    "failed": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_UNKNOWN,
}
LIVE = "running"  # tb/running/: the session while its run trains


class Session:
    """A run as one HParams session: RUNNING while it trains, then its final status.

    TensorBoard keeps the first session status a logdir holds, so the RUNNING one lives in a
    folder of its own, ``tb/running/`` (a session without metrics: it never shifts its group's
    averages), removed when the run ends; the final one goes into ``tb/`` itself, where the
    run's scalars are. A run killed outright keeps ``tb/running/``, as its status.json keeps
    ``running``.

    Parameters
    ----------
    writer : SummaryWriter
        The run's writer (``tb/``).
    hparams : dict
        bool, number or str values; no seed, so a configuration's seeds are one group.
    """

    def __init__(self, writer: SummaryWriter, hparams: dict[str, Any]):
        self.writer = writer
        self.hparams = dict(hparams)
        self.start_time = time.time()
        self.live = writer.logdir / LIVE
        self.ended = False
        with SummaryWriter(self.live) as live:
            live.session_start(self.hparams, self.start_time)
            live.session_end(api_pb2.STATUS_RUNNING)

    def end(self, state: str) -> None:
        """Record the run's final ``state`` (a key of :data:`STATUS`) once; later calls do
        nothing (TensorBoard would read only the first)."""
        if self.ended:
            return
        self.ended = True
        self.writer.session_start(self.hparams, self.start_time)
        self.writer.session_end(STATUS[state], time.time())
        self.writer.flush()
        shutil.rmtree(self.live, ignore_errors=True)


def _type(value: Any) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, int | float):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING


EXPERIMENT_FILE = "events.out.tfevents.experiment"  # in RUNS/<job>/: TensorBoard's run "."
# Hparams whose meaning is the suite's, not a config field's.
HPARAM_NOTES = {
    "job": "the job",
    "cell": "the cell of a batch job (empty for a single run)",
    "profile": "quick or full",
    "fingerprint": "the job's code fingerprint (mnist-suite list --code)",
    "revision": "the commit of the code: 12 hex digits, -dirty with uncommitted changes, or "
    "unknown outside git",
}


def experiment_bytes(hparams: dict[str, Any], metrics: list[str], description: str) -> bytes:
    """An event file declaring one HParams experiment: ``hparams``' names, typed by their
    values, and ``metrics`` (names of :data:`SCALARS`). The same arguments give the same
    bytes (no clock inside), so a job's runs write one file, not one each."""
    experiment = api_pb2.Experiment(
        description=description,
        hparam_infos=[
            api_pb2.HParamInfo(name=k, type=_type(v), description=HPARAM_NOTES.get(k, ""))
            for k, v in hparams.items()
        ],
        metric_infos=[
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), description=SCALARS[m])
            for m in metrics
        ],
    )
    data = plugin_data_pb2.HParamsPluginData(experiment=experiment)
    buf = io.BytesIO()
    records = RecordWriter(buf)
    for event in (
        event_pb2.Event(file_version="brain.Event:2"),
        event_pb2.Event(summary=_plugin_summary(metadata.EXPERIMENT_TAG, data)),
    ):
        records.write(event.SerializeToString())
    records.flush()
    return buf.getvalue()


def write_experiment(
    folder: Path, hparams: dict[str, Any], metrics: list[str], description: str
) -> bool:
    """Write a job's HParams experiment into ``folder`` (``RUNS/<job>/``), unless the same one
    is there already; returns whether it wrote. OSError if it cannot.

    TensorBoard reads one experiment per logdir: with ``--logdir RUNS/<job>`` its HParams tab
    shows this job's hparams and metrics, every run below as a session. Written to a temp file
    and renamed; a link, a FIFO or a folder in its place is an OSError, never replaced.
    """
    path = Path(folder) / EXPERIMENT_FILE
    data = experiment_bytes(hparams, metrics, description)
    try:
        if read_bounded(path, len(data) + 1, follow=False) == data:
            return False
    except FileNotFoundError:
        pass
    # TensorBoard reads any file whose name holds "tfevents": the temp name must not.
    with atomic_file(path, temp_prefix=".experiment.") as f:
        f.write(data)
    return True
