"""Run directories: every job records itself the same way, atomically.

``OUT/<job>/<run-id>/`` holds ``config.json`` (resolved config, seed, versions, commit, host),
``status.json`` (state, times, owner pid/host, heartbeat), ``metrics.json`` (final figures),
``history.jsonl`` (one JSON object per logged step or epoch), ``tb/`` (TensorBoard events) and
``artifacts/`` (arrays and JSON for the report).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training import seeding
from training.config import to_dict
from training.envinfo import envelope, now_iso
from training.errors import ConfigError, Diverged
from training.files import (
    _json_default,
    atomic_save_npz,
    atomic_write_json,
    finite,
    read_json_object,
    read_jsonl,
)
from training.progress import Progress
from training.targets import METRIC, TargetClock
from training.tb import SummaryWriter

STATES = ("running", "done", "failed", "diverged", "interrupted")
FINAL_STATES = ("done", "diverged")  # deterministic outcomes: re-running would repeat them
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 120.0  # a running owner that has not beaten for this long is presumed dead


def read_history(path: Path) -> list[dict]:
    """Rows of ``history.jsonl``; a torn last line (killed mid-write) is skipped."""
    return read_jsonl(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(status: dict, now: float | None = None) -> bool:
    """Is the process that marked this run ``running`` still at it?"""
    now = time.time() if now is None else now
    beat = status.get("heartbeat_unix", 0.0)
    if now - beat > STALE_SECONDS:
        return False
    if status.get("host") == socket.gethostname():
        return _pid_alive(int(status.get("pid", -1)))
    return True


def effective_state(status: dict | None) -> str:
    """The stored state, with a ``running`` run whose owner died read as ``interrupted``."""
    if not status:
        return "missing"
    state = status.get("state", "missing")
    if state == "running" and not owner_alive(status):
        return "interrupted"
    return state


def load_run(path: Path) -> dict:
    """Everything a reader (report, resume, list) needs from a run directory."""
    status = read_json_object(path / "status.json")
    return {
        "path": path,
        "config": read_json_object(path / "config.json") or {},
        "status": status or {},
        "state": effective_state(status),
        "metrics": read_json_object(path / "metrics.json") or {},
        "history": read_history(path / "history.jsonl"),
    }


def find_runs(out: Path, job: str | None = None) -> list[Path]:
    """Run directories under ``out`` (optionally one job's), sorted."""
    pattern = f"{job}/*/config.json" if job else "*/*/config.json"
    return sorted(p.parent for p in Path(out).glob(pattern))


class Run:
    """What a job's ``train`` function gets: where to write and how to log.

    Attributes
    ----------
    path : Path
        The run directory.
    seed : int
        The run's seed; every random stream comes from it through :meth:`rng`,
        :meth:`int_seed` and :meth:`seed_tensorflow` (never seed a generator yourself).
    config : dataclass
        The resolved (profile + overrides) config.
    targets : TargetClock
        Time to each dev-accuracy target, fed by every :meth:`log` row with ``dev_accuracy``.
    """

    def __init__(
        self,
        path: Path,
        job: str,
        cell: str,
        seed: int,
        config: Any,
        data_options: dict | None = None,
    ):
        self.path = path
        self.job = job
        self.cell = cell
        self.seed = seed
        self.config = config
        self.data_options = data_options or {}
        self.artifacts = path / "artifacts"
        self.tb = SummaryWriter(path / "tb")
        self.start = time.perf_counter()  # before the data is read: time to target counts it
        self.targets = TargetClock()
        self.eval_seconds = 0.0
        self._history = open(path / "history.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._data = None

    @property
    def name(self) -> str:
        return f"{self.job}/{self.cell}" if self.cell else self.job

    def rng(self, stream: str) -> np.random.Generator:
        """The run's NumPy generator for ``stream`` (init, order, dev, augment, noise, ...)."""
        return seeding.rng(self.seed, stream)

    def int_seed(self, stream: str) -> int:
        """An integer seed of ``stream`` for libraries that take one (scikit-learn)."""
        return seeding.int_seed(self.seed, stream)

    def seed_tensorflow(self) -> int:
        """Seed TensorFlow/Keras from the run's ``tf`` stream, ops deterministic."""
        return seeding.seed_tensorflow(self.seed)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Time an evaluation: its cost is reported (``eval_seconds``), never taken off a clock."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.eval_seconds += time.perf_counter() - start

    def data(self):
        """Verified MNIST, from the source the command line chose (loaded once per run)."""
        if self._data is None:
            from training.data import load_mnist

            self._data = load_mnist(**self.data_options)
        return self._data

    def log(self, step: int, kind: str = "epoch", **values: float) -> None:
        """Append one history row and write each value as TensorBoard scalar ``kind/name``."""
        row = {"kind": kind, "step": int(step), "time": round(time.perf_counter() - self.start, 4)}
        row.update(values)
        self._write_row(row)
        self.tb.scalars(values, step, prefix=f"{kind}/")
        if METRIC in values:
            for target in self.targets.update(float(values[METRIC]), row["time"], step):
                self._write_row(
                    {"kind": "target", "step": int(step), "time": row["time"], "target": target}
                )
                self.tb.scalar(f"target/seconds_to_{target:g}", row["time"], step)

    def _write_row(self, row: dict) -> None:
        # One write of one line: a kill leaves at most a torn last line, which readers skip.
        self._history.write(json.dumps(finite(row), default=_json_default) + "\n")
        self._history.flush()

    def elapsed(self) -> float:
        """Seconds since the run started (rounded to ms)."""
        return round(time.perf_counter() - self.start, 3)

    def check_finite(self, step: int, loss: float) -> None:
        """Raise :class:`Diverged` if ``loss`` is nan or inf."""
        if not math.isfinite(loss):
            raise Diverged(step, loss)

    def save_arrays(self, name: str, **arrays: np.ndarray) -> Path:
        path = self.artifacts / f"{name}.npz"
        atomic_save_npz(path, **arrays)
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        path = self.artifacts / f"{name}.json"
        atomic_write_json(path, obj)
        return path

    def progress(self, total: int, samples_per_step: int = 1) -> Progress:
        return Progress(total, self.name, samples_per_step)

    def close(self) -> None:
        self.tb.close()
        self._history.close()


@dataclass
class Outcome:
    """The result of one run as the command line reports it."""

    path: Path
    state: str
    message: str = ""
    skipped: bool = False
    metrics: dict = field(default_factory=dict)


class _Heartbeat(threading.Thread):
    """Rewrites status.json every few seconds so readers can tell a dead owner from a slow one."""

    def __init__(self, write_status):
        super().__init__(daemon=True, name="heartbeat")
        self.write_status = write_status
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            self.write_status()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def execute(
    job,
    cell: str,
    config: Any,
    *,
    seed: int,
    profile: str,
    out: Path,
    run_id: str,
    data_options: dict | None = None,
    force: bool = False,
) -> Outcome:
    """Run one cell of ``job`` into ``out/job/run_id`` and record how it ended.

    A run already ``done`` or ``diverged`` is skipped unless ``force``; a ``failed``,
    ``interrupted`` or dead ``running`` one is cleared and run again. KeyboardInterrupt
    (Ctrl-C or SIGTERM) marks it ``interrupted`` and propagates.
    """
    path = Path(out) / job.name / run_id
    previous = effective_state(read_json_object(path / "status.json"))
    if previous in FINAL_STATES and not force:
        return Outcome(
            path,
            previous,
            "already recorded",
            skipped=True,
            metrics=read_json_object(path / "metrics.json") or {},
        )
    if previous == "running":
        status = read_json_object(path / "status.json") or {}
        raise ConfigError(
            f"{path}: already running (pid {status.get('pid')} on {status.get('host')})"
        )
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)

    atomic_write_json(
        path / "config.json",
        {
            "job": job.name,
            "cell": cell,
            "profile": profile,
            "seed": seed,
            "run_id": run_id,
            "config": to_dict(config),
            **envelope(),
        },
    )
    status = {
        "state": "running",
        "started_at": now_iso(),
        "ended_at": None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "heartbeat_unix": time.time(),
    }
    lock = threading.Lock()

    def write_status(**changes):
        with lock:
            status.update(changes, heartbeat_unix=time.time())
            atomic_write_json(path / "status.json", status)

    write_status()
    beat = _Heartbeat(write_status)
    beat.start()
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    run = Run(path, job.name, cell, seed, config, data_options)
    # Every run's HParams carry its seed and job/cell, so TensorBoard can group and filter.
    run.tb.hparams(job.hparams(cell, config, profile, seed), trial_id=run_id)

    def recorded(metrics: dict) -> dict:
        """Figures the runner measures for every job, beside the job's own."""
        metrics.setdefault("wall_seconds", round(time.perf_counter() - run.start, 3))
        metrics.setdefault("eval_seconds", round(run.eval_seconds, 3))
        if getattr(job, "family", "classifier") == "classifier":
            metrics.setdefault("time_to_target", run.targets.summary())
        return metrics

    try:
        metrics = recorded(dict(job.train(config, run) or {}))
        atomic_write_json(path / "metrics.json", metrics)
        outcome = Outcome(path, "done", metrics=metrics)
    except Diverged as exc:
        metrics = recorded({"diverged_at_step": exc.step, "final_train_loss": exc.loss})
        atomic_write_json(path / "metrics.json", metrics)
        outcome = Outcome(path, "diverged", str(exc), metrics=metrics)
    except KeyboardInterrupt as exc:
        beat.stop()
        write_status(
            state="interrupted",
            ended_at=now_iso(),
            message=f"interrupted ({exc.args[0] if exc.args else 'SIGINT'})",
        )
        raise
    except Exception as exc:  # recorded, then reported on one line by the CLI
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        outcome = Outcome(path, "failed", message)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        run.close()
    beat.stop()
    extra = {"message": outcome.message} if outcome.message else {}
    if outcome.state == "diverged":
        extra["diverged_at_step"] = outcome.metrics["diverged_at_step"]
    write_status(state=outcome.state, ended_at=now_iso(), **extra)
    return outcome
