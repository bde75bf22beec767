"""Run directories: every job records itself the same way, atomically.

``OUT/<job>/<run-id>/`` holds ``config.json`` (resolved config, seed, versions, commit, host),
``status.json`` (state, times, owner pid/host, heartbeat), ``metrics.json`` (final figures),
``history.jsonl`` (one JSON object per logged step or epoch), ``tb/`` (TensorBoard events) and
``artifacts/`` (arrays and JSON for the report).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnist_suite import claims, fingerprint, itemclock, limits, records, seeding
from mnist_suite.config import to_dict
from mnist_suite.defaults import CLAIM_WAIT_VARIABLE, PROFILES
from mnist_suite.envinfo import commit_info, envelope, now_iso
from mnist_suite.errors import Diverged, MachineError, ParameterError, RunIOError
from mnist_suite.files import (
    _json_default,
    atomic_save_npz,
    atomic_write_json,
    finite,
    npy_header,
    read_json_object,
)
from mnist_suite.progress import Progress
from mnist_suite.targets import METRIC, NOT_EVALUATIONS, TargetClock, target_key
from mnist_suite.tb import Session, SummaryWriter, revision, run_scalars, write_experiment

log = logging.getLogger(__name__)

# ``unreadable``: this user may not read the run's records (another user's run in a shared
# folder); unlike ``corrupt`` it is never cleared or run again over.
STATES = (*records.STATES, "corrupt", "unreadable")
FINAL_STATES = ("done", "diverged")  # deterministic outcomes: re-running would repeat them
OUTDATED = "outdated"  # a finished run recorded by other code (mnist_suite.fingerprint)
HEARTBEAT_SECONDS = 10.0
ABANDONED_SECONDS = (
    claims.ABANDONED_SECONDS
)  # a running owner that has not beaten for this long is dead
CLAIM_WAIT_ENV = CLAIM_WAIT_VARIABLE  # seconds a second attempt waits for the first


def read_history(path: Path) -> list[dict]:
    """Rows of ``history.jsonl`` that fit the schema; a torn last line (killed mid-write) too."""
    return records.read_history(path, strict=False)


def owner_alive(status: dict, now: float | None = None) -> bool:
    """Is the process that marked this run ``running`` still at it?"""
    now = time.time() if now is None else now
    beat = status.get("heartbeat_unix")
    if not records.is_number(beat) or now - beat > ABANDONED_SECONDS:
        return False
    if status.get("host") == socket.gethostname():
        return claims.process_alive(status.get("pid"))
    return True


def effective_state(status: dict | None) -> str:
    """The stored state, with a ``running`` run whose owner died read as ``interrupted``."""
    if not status:
        return "missing"
    state = status.get("state", "missing")
    if state == "running" and not owner_alive(status):
        return "interrupted"
    return state if isinstance(state, str) else "corrupt"


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _recordable(obj: Any) -> Any:
    """``obj`` with every figure beyond ±:data:`~mnist_suite.records.MAX_FIGURE` as None, as
    :func:`~mnist_suite.files.finite` does NaN and inf: a record its readers refuse would make
    a finished run ``corrupt``, and run it again, forever."""
    if isinstance(obj, dict):
        return {k: _recordable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_recordable(v) for v in obj]
    number = isinstance(obj, int | float | np.number) and not isinstance(obj, bool)
    if number and abs(obj) > records.MAX_FIGURE:
        return None
    return obj


def _check_declared_size(path: Path) -> None:
    """ValueError if the arrays of an ``.npz`` declare more than a reader takes of one file."""
    total = 0
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            shape, dtype = npy_header(zf, member)
            total += math.prod(shape) * dtype.itemsize
    if total > limits.MAX_ARTIFACT_BYTES:
        raise ValueError(f"its arrays declare {total} bytes, more than {limits.MAX_ARTIFACT_BYTES}")


@dataclass
class RunRecord:
    """One run directory, read once and checked: what every reader (``runs``, ``plan --status``,
    the pool, the report, ``compare``) gets.

    ``state`` is the recorded state (one of :data:`STATES`, a dead owner's ``running`` read as
    ``interrupted``); ``problem`` says why a ``corrupt`` or ``unreadable`` run is so, naming the
    file or folder. ``config`` is the job's resolved config; ``config_file`` the whole
    ``config.json``. With ``job_folder`` the record stands for a whole job folder that cannot be
    read (``path`` is that folder, ``run_id`` empty): its runs are unknown, and said so once.
    """

    path: Path
    state: str
    problem: str = ""
    config_file: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    job_folder: bool = False
    _npz_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def job(self) -> str:
        if self.job_folder:
            return self.path.name
        return str(self.config_file.get("job") or self.path.parent.name)

    @property
    def cell(self) -> str:
        return str(self.config_file.get("cell") or "")

    @property
    def profile(self) -> str:
        return str(self.config_file.get("profile") or "?")

    @property
    def seed(self) -> int | None:
        seed = self.config_file.get("seed")
        return seed if records.is_int(seed) else None

    @property
    def run_id(self) -> str:
        return "" if self.job_folder else self.path.name

    @property
    def readable(self) -> bool:
        """Were its records read and found to fit (neither ``corrupt`` nor ``unreadable``)?"""
        return self.state not in ("corrupt", "unreadable")

    @property
    def label(self) -> str:
        return f"{self.job}/{self.cell}" if self.cell else self.job

    @property
    def config(self) -> dict:
        """The job's resolved config (profile and overrides applied)."""
        return _dict(self.config_file.get("config"))

    @property
    def envelope(self) -> dict:
        """``machine_info``, ``commit_info``, ``versions`` (objects) and ``datetime``."""
        cfg = self.config_file
        return {k: _dict(cfg.get(k)) for k in ("machine_info", "commit_info", "versions")} | {
            "datetime": str(cfg.get("datetime") or "")
        }

    @property
    def fingerprint(self) -> str | None:
        """The code fingerprint the run executed (:mod:`mnist_suite.fingerprint`); None if the
        run was recorded without one."""
        value = self.config_file.get("fingerprint")
        return value if isinstance(value, str) and value else None

    @property
    def message(self) -> str:
        return self.problem or str(self.status.get("message") or "")

    @property
    def started_at(self) -> str:
        return str(self.status.get("started_at") or self.config_file.get("datetime") or "")

    @property
    def finished_at(self) -> str:
        return str(self.status.get("ended_at") or "")

    @property
    def wall_seconds(self) -> float | None:
        return records.number(self.metrics.get("wall_seconds"))

    def metric(self, name: str) -> float | None:
        """``metrics[name]`` as a finite float, or None."""
        return records.number(self.metrics.get(name))

    def code_state(self, current: str | None) -> str:
        """``current``, ``outdated`` or ``unknown`` (recorded without a fingerprint) against the
        fingerprint ``current`` of the code here; ``current`` when there is none to compare."""
        if current is None:
            return "current"
        if self.fingerprint is None:
            return "unknown"
        return "current" if self.fingerprint == current else OUTDATED

    def shown_state(self, current: str | None) -> str:
        """The state readers show: a finished run of other code is ``outdated``."""
        if self.state in FINAL_STATES and self.code_state(current) != "current":
            return OUTDATED
        return self.state

    def rows(self, kind: str | None = None) -> list[dict]:
        """History rows, optionally only one ``kind`` ("epoch", "eval", "batch", ...)."""
        return [r for r in self.history if kind is None or r.get("kind") == kind]

    def npz(self, name: str) -> dict[str, np.ndarray] | None:
        """Arrays of ``artifacts/<name>.npz`` (never unpickled), or None if absent/unreadable."""
        if name not in self._npz_cache:
            path = self.path / "artifacts" / f"{name}.npz"
            arrays = None
            if path.is_file() and not path.is_symlink():  # a run's own arrays, never a link out
                try:
                    _check_declared_size(path)
                    with np.load(path, allow_pickle=False) as data:
                        arrays = {k: data[k] for k in data.files}
                except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                    log.warning("%s: unreadable (%s)", path, exc)
            self._npz_cache[name] = arrays
        return self._npz_cache[name]

    def array(self, name: str, *keys: str) -> np.ndarray | None:
        """The first of ``keys`` present in ``artifacts/<name>.npz``."""
        arrays = self.npz(name) or {}
        return next((arrays[k] for k in keys if k in arrays), None)

    def json(self, name: str) -> Any:
        return read_json_object(self.path / "artifacts" / f"{name}.json", follow=False)


def load_run(path: Path) -> RunRecord:
    """Everything a reader (report, resume, list, compare) needs from a run directory.

    Never raises on what it reads: a run whose files do not fit their schemas is ``corrupt``
    (``problem`` names the file), one this user may not read ``unreadable``, one being created
    right now ``running``. A run folder that is a symbolic link is corrupt: its records would
    come from outside the runs folder. So is one whose ``config.json`` names another run than
    its folder does (:func:`check_identity`).
    """
    path = Path(path)
    run = RunRecord(path, "corrupt")
    try:
        try:
            if path.is_symlink() or not path.is_dir():
                raise records.RecordError(path.name, "not a folder")
        except OSError as exc:  # a job folder this user may list but not enter
            raise records.unreadable("run folder", exc) from None
        run.config_file = records.read_config(path)
        check_identity(path, run.config_file)
        status = records.read_status(path)
        if status is None:
            raise records.RecordError("status.json", "missing")
        run.status = status
        state = effective_state(status)
        if state in FINAL_STATES:
            metrics = records.read_metrics(path, state)
            if metrics is None:
                raise records.RecordError("metrics.json", f"missing, yet the run is {state}")
            run.metrics = metrics
        run.history = records.read_history(path / "history.jsonl")
    except records.UnreadableRecord as exc:
        # Checked before any claim: what this user cannot read it cannot judge, held or not.
        run.state, run.problem = "unreadable", str(exc)
        return run
    except records.RecordError as exc:
        # A run being (re)created right now is not corrupt, only unfinished.
        if claims.live_holder(path) is not None:
            run.state = "running"
            return run
        run.problem = str(exc)
        return run
    run.state = state
    return run


# The folder name plan.run_id gives a run: [<cell>-]<profile>-s<seed>-<config hash>[-c<code>].
_RUN_NAME = re.compile(
    rf"(?:(?P<cell>.+)-)?(?P<profile>{'|'.join(PROFILES)})-s(?P<seed>\d+)-[0-9a-f]{{8}}"
    r"(?:-c(?P<code>[0-9a-f]+))?"
)


def check_identity(path: Path, config: dict) -> None:
    """RecordError unless ``config.json`` names the run its folder ``path`` does.

    A run's folder is its identity (``RUNS/<job>/<run-id>``, the run id naming cell, profile,
    seed and code): a record copied or renamed to another folder (``quick-s1-…`` holding seed
    0's record) must not count as the run it is named for. The recorded ``job`` and ``run_id``
    must be the folder's and, in a folder named as this suite names runs, the recorded cell,
    profile, seed and code fingerprint the ones its name carries. Fields left out are not
    checked (hand-made and older records; runs named before run ids carried the code recorded
    theirs beside a name without it).
    """
    said = {"job": path.parent.name, "run_id": path.name}
    match = _RUN_NAME.fullmatch(path.name)
    if match:
        said |= {
            "cell": match["cell"] or "",
            "profile": match["profile"],
            "seed": int(match["seed"]),
            "fingerprint": match["code"],
        }
    for key, expected in said.items():
        if key in config and expected is not None and config[key] != expected:
            raise records.RecordError(
                "config.json", f"{key} is {config[key]!r}, but the run's folder says {expected!r}"
            )


def outdated_note(run: RunRecord, current: str | None) -> str:
    """Why ``run`` is outdated against the code fingerprint ``current``, in a few words."""
    if run.fingerprint is None:
        return "outdated (recorded without a code fingerprint)"
    return f"outdated (code {run.fingerprint}, now {current})"


@dataclass(frozen=True)
class Decision:
    """What to do with an item whose run folder holds ``run``: keep it (``skip``) or run it.

    ``note`` says why in a few words; ``state`` is the recorded state when it is kept.
    """

    skip: bool
    state: str = "missing"
    note: str = ""


def decide(
    run: RunRecord | None, current: str | None, *, force: bool = False, reuse_outdated: bool = False
) -> Decision:
    """The one skip decision of ``run``, the pool and ``plan --status``.

    A run finished ``done`` or ``diverged`` by the code here (fingerprint ``current``) is kept
    unless ``force``; one finished by other code (outdated) is run again unless
    ``reuse_outdated`` keeps it. Anything else (missing, failed, interrupted, corrupt, a dead
    owner's ``running``) is run, except an ``unreadable`` run (another user's records): never
    cleared, it is kept and said.
    """
    if run is not None and run.state == "unreadable":
        # Perhaps finished: what this user cannot read, it cannot judge, so it never clears,
        # not even with ``force``.
        return Decision(True, "unreadable", f"{run.problem}; not cleared")
    if run is None or force or run.state not in FINAL_STATES:
        return Decision(False, "missing" if run is None else run.state)
    if run.code_state(current) == "current":
        return Decision(True, run.state, "already recorded")
    note = outdated_note(run, current)
    if reuse_outdated:
        return Decision(True, run.state, f"{note}, kept")
    return Decision(False, run.state, f"{note}: running it again")


def newest_code(runs: list[RunRecord]) -> tuple[list[RunRecord], int]:
    """Each job's runs at its newest code: (the runs kept, how many of other code left out).

    A runs folder holds the runs of every version of a job's code side by side (the code
    fingerprint is part of a run's identity). Readers show one version per job unless asked
    for all: the fingerprint of the job's most recently started run. Runs recorded without a
    fingerprint count as one more version. A ``corrupt`` or ``unreadable`` run is always kept
    and never chooses the version: its code is unknown, and it is what a reader must see.
    """
    newest: dict[str, tuple[str, bool, str | None]] = {}
    for run in runs:
        if not run.readable:
            continue
        # At equal start times, a run that knows its code wins.
        mark = (run.started_at, run.fingerprint is not None, run.fingerprint)
        if run.job not in newest or mark[:2] > newest[run.job][:2]:
            newest[run.job] = mark
    kept = [r for r in runs if not r.readable or r.fingerprint == newest[r.job][2]]
    return kept, len(runs) - len(kept)


def _entries(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder`` but dot-names (temp files, logs, A/B sides); OSError if it
    cannot be listed."""
    with os.scandir(folder) as entries:
        return [e for e in entries if not e.name.startswith(".")]


def _is_dir(entry: os.DirEntry) -> bool:
    """A folder (or a link to one); an entry this user may not even stat counts, so that
    reading it says why."""
    try:
        return entry.is_dir()
    except OSError:
        return True


def _walk(out: Path, job: str | None) -> tuple[list[Path], list[RunRecord]]:
    """(run folders, records of job folders that cannot be read) under ``out``, entry by entry:
    one entry that cannot be read never hides another. OSError if ``out`` cannot be listed."""
    if job is not None:
        jobs = [out / job] if os.path.lexists(out / job) else []
    else:
        jobs = [Path(e.path) for e in _entries(out) if _is_dir(e)]
    found, problems = [], []
    for job_dir in jobs:
        try:
            if job_dir.is_symlink():
                problem = "a symbolic link (a job's runs are folders of the runs folder itself)"
                problems.append(RunRecord(job_dir, "corrupt", problem, job_folder=True))
                continue
            if not job_dir.is_dir():
                continue
            found += [job_dir / e.name for e in _entries(job_dir) if _is_dir(e)]
        except OSError as exc:
            why = records.unreadable("job folder", exc)
            state = "unreadable" if isinstance(why, records.UnreadableRecord) else "corrupt"
            problem = f"{why}; its runs are not listed"
            problems.append(RunRecord(job_dir, state, problem, job_folder=True))
    return sorted(found), problems


def find_runs(out: Path, job: str | None = None) -> list[Path]:
    """Run directories under ``out`` (optionally one job's), sorted.

    Every folder ``<job>/<run-id>`` counts, whatever it holds (one without ``config.json`` is
    listed as ``corrupt``); names starting with a dot are temp files and are skipped. A job
    folder that cannot be listed adds nothing here (:func:`scan` says so) and hides no other.
    """
    try:
        return _walk(Path(out), job)[0]
    except OSError:
        return []  # a missing or unreadable runs folder holds no runs


def scan(out: Path, job: str | None = None) -> list[RunRecord]:
    """Every run under ``out`` (optionally one job's) read with :func:`load_run`, sorted by job
    and run id: what ``runs``, the report and ``compare`` list.

    Read entry by entry: a run or job folder that cannot be read is one ``unreadable`` or
    ``corrupt`` record with the reason, and everything else is read. A missing runs folder
    holds no runs; one this user may not list is a MachineError (its runs are unknown, not
    absent; the suite's own folder refused to it).
    """
    out = Path(out)
    try:
        paths, problems = _walk(out, job)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise MachineError(f"runs {out}: cannot list it ({exc.strerror or exc})") from None
    return sorted([*map(load_run, paths), *problems], key=lambda r: (r.job, r.run_id))


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
        Time to each dev-accuracy target, fed by every :meth:`log` row with ``dev_accuracy``
        made during training (not the final ``eval`` row, which repeats one).
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
        # Appended, never followed if a link was put there: the run's own file or none.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        self._history = open(os.open(path / "history.jsonl", flags, 0o666), "ab")  # noqa: SIM115
        self._history_bytes = self._history.tell()
        self._history_full = False
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
        """Time an evaluation: its cost is reported (``eval_seconds``), apart from training
        (:meth:`training_clock`); the run's own clock (time to target) keeps it."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.eval_seconds += time.perf_counter() - start

    def training_clock(self) -> Callable[[], float]:
        """A clock started now: calling it gives the seconds since, less the evaluations made
        meanwhile (:meth:`evaluating`), rounded to ms. ``train_seconds`` and ``epoch_seconds``
        are read on it, so training and evaluation never count the same second."""
        start, evaluated = time.perf_counter(), self.eval_seconds

        def seconds() -> float:
            return round(time.perf_counter() - start - (self.eval_seconds - evaluated), 3)

        return seconds

    def data(self):
        """Verified MNIST, from the source the command line chose (loaded once per run)."""
        if self._data is None:
            from mnist_suite.data import load_mnist

            self._data = load_mnist(**self.data_options)
        return self._data

    def log(
        self,
        step: int,
        kind: str = "epoch",
        *,
        epoch: int | None = None,
        k: int | None = None,
        **values: float,
    ) -> None:
        """Append one history row and write each value as TensorBoard scalar ``kind/name``.

        ``step`` is the optimizer step (0 for a model fitted without one); ``epoch`` the epoch
        of an ``epoch`` row and ``k`` the latent size of a ``latent`` row, kept in the row
        beside it, not as values. Names follow :data:`mnist_suite.tb.SCALARS`.
        """
        row = {"kind": kind, "step": int(step)}
        row.update({name: int(v) for name, v in (("epoch", epoch), ("k", k)) if v is not None})
        row["time"] = round(time.perf_counter() - self.start, 4)
        row.update(values)
        self._write_row(row)
        self.tb.scalars(values, int(step) if k is None else int(k), prefix=f"{kind}/")
        if METRIC in values and kind not in NOT_EVALUATIONS:
            for target in self.targets.update(float(values[METRIC]), row["time"], step):
                self._write_row(
                    {"kind": "target", "step": int(step), "time": row["time"], "target": target}
                )
                self.tb.scalar(f"target/seconds_to_{target_key(target)}", row["time"], step)

    def _write_row(self, row: dict) -> None:
        # One write of one line: a kill leaves at most a torn last line, which readers skip.
        if self._history_full:
            return
        line = (json.dumps(finite(_recordable(row)), default=_json_default) + "\n").encode()
        if self._history_bytes + len(line) > records.MAX_HISTORY_BYTES - 256:
            # Readers read up to the cap: stop here, with one row saying so (256 bytes kept).
            self._history_full = True
            line = (
                json.dumps(
                    {"kind": records.HISTORY_FULL, "step": row["step"], "time": row["time"]}
                ).encode()
                + b"\n"
            )
        self._history.write(line)
        self._history.flush()
        self._history_bytes += len(line)

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
        """Flush and close the history and events (safe to call twice)."""
        if not self._history.closed:
            try:
                self.tb.close()
            finally:
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
    """Refreshes the claim and status.json every few seconds (a slow owner is not a dead one)."""

    def __init__(self, beat):
        super().__init__(daemon=True, name="heartbeat")
        self.beat = beat
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            # Disk full or folder gone: the run's own writes fail and record why.
            with contextlib.suppress(OSError):
                self.beat()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _claim_wait() -> float:
    """``$MNIST_SUITE_CLAIM_WAIT`` in seconds, 0 to :data:`~mnist_suite.limits.MAX_CLAIM_WAIT`."""
    text = os.environ.get(CLAIM_WAIT_ENV, "").strip() or "0"
    return limits.seconds(text, f"${CLAIM_WAIT_ENV}", limits.MAX_CLAIM_WAIT)


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
    wait: float | None = None,
    reuse_outdated: bool = False,
    check_first: bool = False,
) -> Outcome:
    """Run one cell of ``job`` into ``out/job/run_id`` and record how it ended.

    The run is claimed first (:mod:`mnist_suite.claims`). While another live attempt holds it,
    this one waits up to ``wait`` seconds (default ``$MNIST_SUITE_CLAIM_WAIT``, else 0) and then
    returns a skipped ``running`` outcome naming the holder, without touching the run. Once
    claimed, the run folder is read once and :func:`decide` keeps a finished run (``force``
    and ``reuse_outdated`` as there) or runs it; an ``unreadable`` one (another user's records)
    is left as it is and returned, skipped. With ``check_first``, a run about to train is
    checked before anything is created or cleared: its job's TensorFlow, and the data (loaded
    and verified once per process; the runs reuse it).
    KeyboardInterrupt (Ctrl-C or SIGTERM) marks it ``interrupted`` and propagates. A run folder
    that cannot be claimed, cleared or written raises :class:`~mnist_suite.errors.RunIOError`.
    """
    if not records.is_int(seed) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be an integer >= 0")
    path = Path(out) / job.name / run_id
    wait = _claim_wait() if wait is None else wait
    checked = check_first and not path.exists()
    if checked:
        _check_runnable(job, data_options)  # nothing recorded: before any folder is created
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        claim = claims.acquire(claims.claim_path(path), wait)
    except claims.ClaimBusy as exc:
        return Outcome(path, "running", f"claimed by {exc.holder.describe()}", skipped=True)
    except OSError as exc:
        raise RunIOError(f"{path}: cannot claim the run ({exc.strerror or exc})") from None
    try:
        code = fingerprint.of_job(job)
        previous = load_run(path) if path.exists() else None
        decision = decide(previous, code, force=force, reuse_outdated=reuse_outdated)
        if decision.skip:
            return Outcome(path, decision.state, decision.note, True, previous.metrics)
        if decision.note:
            log.warning("%s: %s", path, decision.note)
        if previous is not None:
            # The raw status, even if it misses fields: a live owner is never clobbered.
            status = read_json_object(path / "status.json", follow=False) or {}
            if status.get("state") == "running" and owner_alive(status):
                # Written by an attempt that took no claim.
                who = f"pid {status.get('pid')} on {status.get('host')}"
                return Outcome(path, "running", f"marked running by {who}", skipped=True)
        if check_first and not checked:
            _check_runnable(job, data_options)  # before the old run is cleared
        if previous is not None:
            _clear(path)
        return _execute_claimed(job, cell, config, seed, profile, path, data_options, claim, code)
    finally:
        claim.release()


def _check_runnable(job, data_options: dict | None) -> None:
    """Refuse a run that cannot train here (ConfigError, DataError) before its folder is
    touched: TensorFlow for a job that needs it, and MNIST loaded and verified."""
    from mnist_suite.data import load_mnist

    check = getattr(job, "check_runtime", None)
    if check is not None:
        check()
    load_mnist(**(data_options or {}))


def _clear(path: Path) -> None:
    """Remove the old run at ``path`` (claimed by this attempt) before running it again."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        raise RunIOError(f"{path}: cannot clear the old run ({exc.strerror})") from None


def _execute_claimed(job, cell, config, seed, profile, path, data_options, claim, code):
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
            records.write(path / "status.json", status)

    def beat():
        claim.beat()
        write_status()

    try:
        path.mkdir(parents=True)
        records.write(
            path / "config.json",
            {
                "job": job.name,
                "cell": cell,
                "profile": profile,
                "seed": seed,
                "run_id": path.name,
                "config": to_dict(config),
                **({"fingerprint": code} if code else {}),
                **envelope(),
            },
        )
        write_status()
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise RunIOError(f"{path}: cannot start the run ({why})") from None
    heartbeat = _Heartbeat(beat)
    heartbeat.start()
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    run = session = None

    def recorded(metrics: dict) -> dict:
        """Figures the runner measures for every job, beside the job's own."""
        metrics.setdefault("wall_seconds", round(time.perf_counter() - run.start, 3))
        metrics.setdefault("eval_seconds", round(run.eval_seconds, 3))
        for key, value in itemclock.finished().items():
            metrics.setdefault(key, value)
        if getattr(job, "family", "classifier") == "classifier":
            metrics.setdefault("time_to_target", run.targets.summary())
        return metrics

    try:
        run = Run(path, job.name, cell, seed, config, data_options)
        session = Session(run.tb, _hparams(job, cell, config, profile, seed, code, path.parent))
        try:
            metrics = recorded(dict(job.train(config, run) or {}))
            outcome = Outcome(path, "done", metrics=metrics)
        except Diverged as exc:
            metrics = recorded({"diverged_at_step": exc.step, "final_train_loss": exc.loss})
            outcome = Outcome(path, "diverged", str(exc), metrics=metrics)
        run.tb.scalars(run_scalars(metrics), step=0)
        session.end(outcome.state)
        run.close()  # history and events complete before the metrics say the run ended
        figures = _recordable(metrics)
        # Figures its readers would call corrupt (a plugin's accuracy of 93, a text loss) fail
        # the run here, saying which, instead of recording a done run nobody can read.
        records.check_metrics(json.loads(records.encode(figures, "metrics.json")), outcome.state)
        records.write(path / "metrics.json", figures)
    except KeyboardInterrupt as exc:
        heartbeat.stop()
        _end_session(session, "interrupted")
        write_status(
            state="interrupted",
            ended_at=now_iso(),
            message=f"interrupted ({exc.args[0] if exc.args else 'SIGINT'})",
        )
        raise
    except Exception as exc:  # recorded, then reported on one line by the CLI
        if isinstance(exc, OSError) and exc.strerror and not exc.filename:
            exc.filename = str(path)  # a write with no name (an events flush): the run's folder
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        outcome = Outcome(path, "failed", message)
        _end_session(session, "failed")
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if run is not None:
            try:
                run.close()
            except OSError as exc:  # a full disk: the run's end is still recorded below
                log.warning("%s: history or events incomplete (%s)", path, exc.strerror or exc)
    heartbeat.stop()
    extra = {"message": outcome.message} if outcome.message else {}
    if outcome.state == "diverged":
        extra["diverged_at_step"] = outcome.metrics["diverged_at_step"]
    _record_end(write_status, path, state=outcome.state, ended_at=now_iso(), **extra)
    return outcome


def _hparams(job, cell, config, profile, seed, code, job_dir: Path) -> dict:
    """The run's HParams, after making sure its job's experiment is declared in ``job_dir``.

    Job, cell, profile, config, code fingerprint and commit, but not the seed: TensorBoard
    groups the sessions of equal hparams, so a group is one configuration's seeds, and runs of
    two versions of the code never share one.
    """
    values = {k: v for k, v in job.hparams(cell, config, profile, seed).items() if k != "seed"}
    values |= {"fingerprint": code or "unknown", "revision": revision(commit_info())}
    try:
        write_experiment(job_dir, values, list(job.scalars), f"{job.name}: {job.summary}")
    except OSError as exc:  # the run's own records do not depend on the dashboard's index
        log.warning("%s: HParams experiment not written (%s)", job_dir, exc.strerror or exc)
    return values


def _end_session(session: Session | None, state: str) -> None:
    """The TensorBoard session's end, if it began; a failure to write it fails nothing more."""
    if session is None:
        return
    try:
        session.end(state)
    except OSError as exc:
        log.warning("TensorBoard session not ended (%s)", exc.strerror or exc)


def _record_end(write_status, path: Path, **fields) -> None:
    """Write the final status; on a full disk, free the failed run's partial outputs first."""
    try:
        write_status(**fields)
        return
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise RunIOError(f"{path}: cannot record the run's end ({exc.strerror})") from None
    # Partial events and arrays of a run that failed are worth less than knowing it failed.
    shutil.rmtree(path / "tb", ignore_errors=True)
    shutil.rmtree(path / "artifacts", ignore_errors=True)
    (path / "history.jsonl").unlink(missing_ok=True)
    try:
        write_status(**fields)
    except OSError as exc:
        raise RunIOError(f"{path}: cannot record the run's end ({exc.strerror})") from None
