"""TensorBoard event files without TensorFlow: TensorBoard's own protos and record writer.

``tensorboard.summary.writer.EventFileWriter`` imports TensorFlow when it is installed; the
NumPy jobs must not, so this writes the record file itself with ``RecordWriter`` (which frames
and checksums records) and the ``event_pb2`` / ``summary_pb2`` protos.
"""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.summary.writer.record_writer import RecordWriter


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

    def hparams(self, hparams: dict[str, Any], trial_id: str | None = None) -> None:
        """Record this run's hyperparameters for TensorBoard's HParams dashboard."""
        self._summary(hp.hparams_pb(hparams, trial_id=trial_id), 0)

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


RESULT_PREFIX = "result/"  # each run's final metrics, the HParams table's metric columns


# Numbers a run records that describe its setting, not its outcome: never a metric column.
NOT_METRICS = ("threads", "process_item")


def result_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers among a run's metrics (nested values, flags and settings left out).

    Written as ``result/<name>`` by every job: one tag namespace for final figures. TensorBoard's
    HParams tab computes its experiment from the runs' session hparams (typed by their values)
    and these tags, so every metric of every finished run is a column.
    """
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and np.isfinite(v)
        and not any(word in k for word in NOT_METRICS)
    }
