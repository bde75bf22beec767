"""The local back end: a pool of warm worker processes on this machine.

Each worker is ``python -m mnist_suite worker`` (:mod:`mnist_suite.launch.worker`): it pays for
imports, TensorFlow's start and reading MNIST once, then runs the items the pool gives it one
after another, exactly as ``mnist-suite run … --index …`` would. Items go out longest first
(:mod:`mnist_suite.schedule`), so the long ones do not end up alone at the end. A crash (an
out-of-memory kill, a TensorFlow abort) ends that worker and its item only: the item is tried
once more in a fresh worker, and the pool goes on. Workers split the cores: with W workers each
gets ``cores // W`` BLAS/TensorFlow threads, so two workers on two cores do not fight over four
threads. Output is appended to one log file per item, one block per attempt under a header line
(a log that is a symbolic link, a FIFO or a device is refused and its item not started); the
pool prints one line per event (:mod:`mnist_suite.launch.watch`: a status line on a terminal);
an item already recorded is skipped without a worker, and one another pool holds (a live claim)
is "held elsewhere": not run here, and not a failure here.

Each worker runs in a process group of its own, which the kernel also ends when the pool dies
(``PR_SET_PDEATHSIG``), so no item outlives the pool. SIGINT (any number of times), SIGTERM
and SIGHUP stop the pool starting items and reach every worker as SIGTERM, which records its
running item ``interrupted``; the pool says so in one line and every item that did not finish
gets ``128 + signal`` (130, 143 or 129).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import mnist_suite
from mnist_suite.claims import live_holder
from mnist_suite.defaults import default_workers
from mnist_suite.errors import EXIT_FAILED, EXIT_RESULTS, EXIT_SIGINT
from mnist_suite.launch import WORKER_OPTIONS, LaunchOptions, thread_env
from mnist_suite.launch.watch import PoolProgress
from mnist_suite.options import to_argv
from mnist_suite.plan import INDEX_VARIABLES, WorkItem, run_dir
from mnist_suite.text import printable

POLL_SECONDS = 0.2
GRACE_SECONDS = 10.0  # for a stopped item to record itself before it is killed
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


class Attempt(NamedTuple):
    """Where an attempt's block starts in its item's log, and when it started."""

    offset: int
    started: datetime


class Stopped(Exception):
    """The pool got a stop signal; ``signum`` names it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it (the pool's, or
    compare's) ends, however it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def signal_group(proc: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the worker's whole process group (its own, made at start)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def log_path(logs: Path, item: WorkItem) -> Path:
    """One log per run (stable across plans: named by job and run id, not by index)."""
    return logs / item.job / f"{item.run_id}.log"


def _why(exc: OSError) -> str:
    """An OSError as a few words: what it concerned and why."""
    return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc)


def open_log(path: Path) -> int:
    """A descriptor appending to the item's log at ``path``, created with the umask's mode.

    Neither the log nor its job folder is followed if it is a symbolic link (a link planted
    there would have the pool append a run's output to any file this user can write), and
    anything but a regular file is refused: a FIFO would block the pool, a device swallow the
    output. OSError says which.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for where in (path.parent, path):
        if where.is_symlink():
            raise OSError(errno.ELOOP, "a symbolic link; not followed", str(where))
    # Checked again on the descriptors: a link put there since is not followed either.
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(path.name, flags, 0o666, dir_fd=folder)
    except OSError as exc:  # ENXIO: a FIFO nobody reads; ELOOP: a link put there since
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    os.set_blocking(fd, True)
    return fd


def _block(path: Path, offset: int, max_bytes: int = 1 << 20) -> list[str]:
    """The lines one attempt appended to ``path`` from ``offset`` (its last MiB at most)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return []
        start = max(offset, st.st_size - max_bytes)
        data = os.pread(fd, max(0, st.st_size - start), start)
    except OSError:
        return []
    finally:
        os.close(fd)
    return data.decode(errors="replace").strip().splitlines()


def _recorded_run(options: LaunchOptions, item: WorkItem) -> dict | None:
    from mnist_suite.runs import load_run

    path = run_dir(options.runs, item)
    return load_run(path) if path.is_dir() else None


def _note_skip(path: Path, item: WorkItem, why: str) -> None:
    """One line in the item's log: this pool found it recorded and started nothing."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The log is a courtesy; the run record is the truth.
    with contextlib.suppress(OSError), open(open_log(path), "a", encoding="utf-8") as log:
        log.write(
            f"==== {stamp} plan item #{item.index} by pid {os.getpid()} on "
            f"{socket.gethostname()}: skipped ({why})\n"
        )


def _read_available(fd: int) -> bytes:
    """Everything a non-blocking pipe holds now (b"" if nothing, or at its end)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


class WarmWorker:
    """One worker process of the pool (:mod:`mnist_suite.launch.worker`): it is given an item,
    answers its exit code, and is given the next. What it prints is copied into the log of the
    item it runs (or ran last)."""

    def __init__(self, argv: list[str], env: dict[str, str], kind: str):
        self.kind = kind  # what it can run: "" (any item) or an image flavour
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            process_group=0,
            preexec_fn=die_with_parent,  # the pool runs no threads: safe before exec
        )
        for pipe in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        self.pid = self.proc.pid
        self.log: int | None = None  # the descriptor of its item's log
        self.code: int | None = None  # the item's exit code, once answered
        self.crashed = False  # it ended without answering
        self._answers = b""

    def give(self, argv: list[str], log: int) -> None:
        """Send it an item; its output goes to ``log`` (a descriptor it now owns)."""
        self._close_log()
        self.log, self.code = log, None
        try:
            self.proc.stdin.write((json.dumps(argv) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it died meanwhile: poll() says so

    def poll(self) -> int | None:
        """The item's exit code once answered, or the worker's if it ended first; else None."""
        self.pump()
        if self.code is None and self.proc.poll() is not None:
            self.pump()
            if self.code is None:
                self.crashed = True
                self.code = self.proc.returncode or EXIT_FAILED
        return self.code

    def pump(self) -> None:
        """Copy what it printed into the item's log; read its answer."""
        out = _read_available(self.proc.stderr.fileno())
        if out and self.log is not None:
            with contextlib.suppress(OSError):  # the log is a courtesy; the run record is the truth
                os.write(self.log, out)
        self._answers += _read_available(self.proc.stdout.fileno())
        if self.code is None and b"\n" in self._answers:
            line, self._answers = self._answers.split(b"\n", 1)
            text = line.strip().decode(errors="replace")
            self.code = int(text) if text.lstrip("-").isdigit() else EXIT_FAILED

    def close(self, timeout: float = 60.0) -> None:
        """End it: no more items (it exits), else killed after ``timeout``."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(self.proc, signal.SIGKILL)
            self.proc.wait()
        self.pump()
        for pipe in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                pipe.close()
        self._close_log()

    def _close_log(self) -> None:
        if self.log is not None:
            with contextlib.suppress(OSError):
                os.close(self.log)
            self.log = None


class LocalLauncher:
    """Run items in warm worker processes, ``workers`` at a time."""

    def __init__(self, python: str = sys.executable, echo: Callable[[str], None] | None = None):
        self.python = python
        self.live = echo is None  # a status line only when printing to the terminal ourselves
        self.echo = echo or (lambda line: print(line, flush=True))

    def worker_kind(self, item: WorkItem) -> str:
        """Which workers can run ``item``: here, any (a container launcher: its image's)."""
        return ""

    def worker_command(self, kind: str, options: LaunchOptions, number: int) -> list[str]:
        """The argv of a worker (a container launcher overrides this)."""
        return [self.python, "-m", "mnist_suite", "worker"]

    def item_argv(self, item: WorkItem, options: LaunchOptions) -> list[str]:
        """The ``mnist-suite`` arguments that run exactly ``item`` in a worker."""
        argv = [*item.argv(), "--runs", str(options.runs)]
        return argv + to_argv(options, WORKER_OPTIONS)

    def environment(self, threads: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INDEX_VARIABLES}
        env.update(thread_env(threads))
        # The children import the same package as this process, installed or not.
        source = str(Path(mnist_suite.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
        return env

    def sizes(self, n_items: int, options: LaunchOptions) -> tuple[int, int]:
        """(workers, threads per worker) for ``n_items`` items."""
        cores = default_workers()
        workers = max(1, min(options.workers or cores, n_items or 1))
        return workers, options.threads or max(1, cores // workers)

    def launch(self, items: list[WorkItem], options: LaunchOptions) -> dict[int, int]:
        from mnist_suite.batch import decide_item, recorded_exit_code  # reads runs: NumPy
        from mnist_suite.schedule import expected_seconds, longest_first

        workers, threads = self.sizes(len(items), options)
        self.total = len(items)
        logs = Path(options.logs or Path(options.runs) / ".logs")
        env = self.environment(threads)
        codes: dict[int, int] = {}
        expected = expected_seconds(items, Path(options.runs))
        queue = longest_first(items, expected)
        running: dict[int, tuple[WorkItem, WarmWorker, float, Attempt]] = {}
        pool: list[WarmWorker] = []
        retried: set[int] = set()
        self._started_workers = 0
        self.echo(
            f"{len(items)} items, {workers} workers x {threads} threads; logs in {logs}/<job>/"
        )
        start = time.perf_counter()
        stopping: list[int] = []
        live = PoolProgress.for_terminal() if self.live else None
        self.progress = PoolProgress(items, expected, options.runs, workers, self.echo, live)

        starting: list[int] = []  # the item being started, while it is

        def on_signal(signum, frame):
            if not stopping:  # later signals, whatever they are, change nothing: stopping
                stopping.append(signum)
                if not starting:  # else raised once the item is started and recorded
                    raise Stopped(signum)

        previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
        try:
            while queue or running:
                while queue and len(running) < workers:
                    item = queue[0]
                    decision = decide_item(
                        options.runs,
                        item,
                        force=options.force,
                        reuse_outdated=options.reuse_outdated,
                    )
                    if decision.skip:
                        queue.pop(0)
                        why = f"{decision.state}, {decision.note}"
                        codes[item.index] = recorded_exit_code(decision.state)
                        self.progress.skipped(item, why)
                        _note_skip(log_path(logs, item), item, why)
                        continue
                    if holder := live_holder(run_dir(options.runs, item)):
                        queue.pop(0)
                        codes[item.index] = 0  # another pool's item, not a failure of this one
                        self.progress.held(item, f"claimed by {holder.describe()}")
                        continue
                    # A stop signal waits until the item is both started and in ``running``,
                    # so every started item is stopped and every item gets a code.
                    starting.append(item.index)
                    queue.pop(0)
                    try:
                        worker = self._worker_for(item, pool, running, workers, options, env)
                        attempt = self._give(worker, item, options, logs)
                        running[item.index] = (item, worker, time.perf_counter(), attempt)
                    except OSError as exc:
                        codes[item.index] = 1
                        self.progress.refused(item, _why(exc))
                    finally:
                        starting.clear()
                    if stopping:
                        raise Stopped(stopping[0])
                    if item.index in running:
                        self.progress.started(item)
                for index, (item, worker, began, attempt) in list(running.items()):
                    code = worker.poll()
                    if code is None:
                        continue
                    del running[index]
                    if worker.crashed or code not in EXIT_RESULTS:
                        pool.remove(worker)
                        worker.close()
                    if worker.crashed and index not in retried and not stopping:
                        retried.add(index)
                        self.echo(
                            f"#{index} {printable(item.name)}: its worker ended without an "
                            f"answer (code {code}); trying it once more in a fresh worker"
                        )
                        queue.insert(0, item)
                        continue
                    codes[index] = self._finished(item, worker, code, began, options, logs, attempt)
                self.progress.tick()
                time.sleep(POLL_SECONDS)
        except Stopped as exc:
            self.progress.close()
            name = signal.Signals(exc.signum).name
            self.echo(
                f"stopping on {name}: {len(running)} running items end as interrupted, "
                f"{len(queue)} not started"
            )
            self._stop(pool)
            interrupted = 128 + exc.signum
            for index, (_, worker, _, _) in running.items():
                code = worker.code
                stopped = code is None or code < 0 or code == EXIT_SIGINT
                codes[index] = interrupted if stopped else code
            for item in items:  # not started, or started as the signal came
                codes.setdefault(item.index, interrupted)
        finally:
            for s, handler in previous.items():
                # Once stopping, a later signal still changes nothing (the pool is on its way
                # out with 128 + the first signal), also after the loop: it is ignored.
                signal.signal(s, signal.SIG_IGN if stopping else handler)
            for worker in pool:
                worker.close()
            self.progress.close()
        failed = sum(1 for c in codes.values() if c not in EXIT_RESULTS)
        held = self.progress.counts["held"]
        self.echo(
            f"{len(items)} items in {time.perf_counter() - start:.1f} s: "
            f"{len(items) - failed - held} ok or diverged "
            f"({self.progress.counts['skipped']} skipped), "
            + (f"{held} held elsewhere (another pool's live claim; not failures here), "
               if held else "")
            + f"{failed} failed or not run"
        )  # fmt: skip
        return {i.index: codes[i.index] for i in items}

    def _worker_for(self, item, pool, running, workers, options, env) -> WarmWorker:
        """An idle worker that can run ``item``, else a new one (ending an idle one of another
        kind if the pool is full)."""
        kind = self.worker_kind(item)
        busy = {id(w) for _, w, _, _ in running.values()}
        idle = [w for w in pool if id(w) not in busy]
        for worker in idle:
            if worker.kind == kind:
                return worker
        if len(pool) >= workers and idle:
            pool.remove(idle[0])
            idle[0].close()
        self._started_workers += 1
        argv = self.worker_command(kind, options, self._started_workers)
        worker = WarmWorker(argv, env, kind)
        pool.append(worker)
        return worker

    def _give(self, worker: WarmWorker, item: WorkItem, options: LaunchOptions, logs: Path):
        """Give ``item`` to ``worker``; its log gets this attempt's header."""
        path = log_path(logs, item)
        argv = self.item_argv(item, options)
        # Appended, never truncated: earlier attempts stay, and a second pool's lines go after.
        fd = open_log(path)
        try:
            offset = os.lseek(fd, 0, os.SEEK_END)
            attempt = Attempt(offset, datetime.now(UTC))
            stamp = attempt.started.strftime("%Y-%m-%dT%H:%M:%SZ")
            header = (
                f"==== {stamp} attempt of plan item #{item.index} by pid {os.getpid()} "
                f"on {socket.gethostname()}, worker {worker.pid}: mnist-suite {' '.join(argv)}\n"
            )
            os.write(fd, header.encode())
        except OSError:
            os.close(fd)
            raise
        worker.give(argv, fd)
        return attempt

    def ran(self, run, worker: WarmWorker, attempt: Attempt) -> bool:
        """Did this attempt write ``run`` (rather than find it finished and leave it)?"""
        status = run.status
        return status.get("pid") == worker.pid and status.get("host") == socket.gethostname()

    def _finished(self, item, worker, code, began, options, logs, attempt) -> int:
        """Report a finished attempt; the item's code for this pool: 0 when it found the item
        held by another pool (not a failure of this one), 1 when it exited 0 without a record
        where the plan looks (not done), else the worker's."""
        from mnist_suite.runs import FINAL_STATES

        if code == 1 and (holder := live_holder(run_dir(options.runs, item))):
            # Our attempt has ended and released its claim: a live one is another pool's.
            self.progress.held(item, f"claimed by {holder.describe()}")
            return 0
        run = _recorded_run(options, item)
        finished_there = run is not None and run.state in FINAL_STATES
        if code == 1 and finished_there and not self.ran(run, worker, attempt):
            # Held by the other pool when our attempt looked; finished by it since.
            self.progress.held(item, f"{run.state} by pid {run.status.get('pid')} there")
            return 0
        state = "missing" if run is None else run.state
        if run is None and code == 0:
            # The worker recorded the run elsewhere: it planned the folder from other code.
            state = f"no run record at {run_dir(options.runs, item)} (a worker of other code?)"
        if run is not None and code == 0 and not self.ran(run, worker, attempt):
            state += ", skipped"
        block = _block(log_path(logs, item), attempt.offset)
        self.progress.finished(item, state, code, time.perf_counter() - began)
        if code not in EXIT_RESULTS:
            for line in block[-3:]:
                self.echo(f"    {printable(line)}")
        return 1 if run is None and code == 0 else code

    @staticmethod
    def _stop(pool: list[WarmWorker]) -> None:
        """SIGTERM every worker's group (a running item records ``interrupted``); kill what
        outlives the grace period. Signals that arrive meanwhile are ignored by the pool's
        handler."""
        for worker in pool:
            signal_group(worker.proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for worker in pool:
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(worker.proc, signal.SIGKILL)
                worker.proc.wait()
            worker.pump()
