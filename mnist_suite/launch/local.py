"""The local back end: a pool of worker processes on this machine, one item per process.

Each item runs as ``python -m mnist_suite run … --index …`` in a subprocess of its own, so a crash,
an out-of-memory kill or a TensorFlow abort ends that item only. Workers split the cores: with
W workers each gets ``cores // W`` BLAS/TensorFlow threads, so two workers on two cores do not
fight over four threads. Output goes to one log file per item; the pool prints one line per
finished item. Ctrl-C (or SIGTERM) stops starting items, lets running ones record themselves
``interrupted`` and returns 130 for every item that did not finish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mnist_suite
from mnist_suite.defaults import default_workers
from mnist_suite.launch import LaunchOptions, thread_env
from mnist_suite.plan import INDEX_VARIABLES, WorkItem, run_dir

EXIT_INTERRUPTED = 130
POLL_SECONDS = 0.2
GRACE_SECONDS = 10.0  # for a stopped item to record itself before it is killed


def log_path(logs: Path, item: WorkItem) -> Path:
    """One log per run (stable across plans: named by job and run id, not by index)."""
    return logs / item.job / f"{item.run_id}.log"


def _tail(path: Path, lines: int = 3) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return []


def _recorded_state(options: LaunchOptions, item: WorkItem) -> str:
    from mnist_suite.runs import load_run

    path = run_dir(options.runs, item)
    return load_run(path)["state"] if path.is_dir() else "missing"


class LocalLauncher:
    """Run items as subprocesses, ``workers`` at a time."""

    def __init__(self, python: str = sys.executable, echo: Callable[[str], None] | None = None):
        self.python = python
        self.echo = echo or (lambda line: print(line, flush=True))

    def command(self, item: WorkItem, options: LaunchOptions) -> list[str]:
        """The argv that runs exactly ``item`` (a container launcher overrides this)."""
        argv = [self.python, "-m", "mnist_suite", *item.argv(), "--runs", str(options.runs)]
        if options.force:
            argv.append("--force")
        if options.data is not None:
            argv += ["--data", str(options.data)]
        if options.offline:
            argv.append("--offline")
        return argv

    def environment(self, threads: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INDEX_VARIABLES}
        env.update(thread_env(threads))
        # The children import the same `training` as this process, installed or not.
        source = str(Path(mnist_suite.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
        return env

    def sizes(self, n_items: int, options: LaunchOptions) -> tuple[int, int]:
        """(workers, threads per worker) for ``n_items`` items."""
        cores = default_workers()
        workers = max(1, min(options.workers or cores, n_items or 1))
        return workers, options.threads or max(1, cores // workers)

    def launch(self, items: list[WorkItem], options: LaunchOptions) -> dict[int, int]:
        workers, threads = self.sizes(len(items), options)
        logs = Path(options.logs or Path(options.runs) / ".logs")
        env = self.environment(threads)
        codes: dict[int, int] = {}
        queue = list(items)
        running: dict[int, tuple[WorkItem, subprocess.Popen, float]] = {}
        self.echo(
            f"{len(items)} items, {workers} workers x {threads} threads; logs in {logs}/<job>/"
        )
        start = time.perf_counter()

        def on_term(signum, frame):
            raise KeyboardInterrupt("SIGTERM")

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            while queue or running:
                while queue and len(running) < workers:
                    item = queue.pop(0)
                    path = log_path(logs, item)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "w", encoding="utf-8") as log:
                        proc = subprocess.Popen(
                            self.command(item, options),
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            env=env,
                        )
                    running[item.index] = (item, proc, time.perf_counter())
                for index, (item, proc, began) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[index]
                    codes[index] = proc.returncode
                    self._finished(item, proc.returncode, began, options, logs, len(codes), items)
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt as exc:
            self.echo(f"stopping: {len(running)} running items end as interrupted")
            self._stop([p for _, p, _ in running.values()], sigterm=exc.args == ("SIGTERM",))
            for index, (_, proc, _) in running.items():
                codes[index] = proc.returncode if proc.returncode is not None else EXIT_INTERRUPTED
                codes[index] = codes[index] if codes[index] >= 0 else EXIT_INTERRUPTED
            for item in queue:
                codes[item.index] = EXIT_INTERRUPTED
        finally:
            signal.signal(signal.SIGTERM, previous)
        failed = sum(1 for c in codes.values() if c not in (0, 3))
        self.echo(
            f"{len(items)} items in {time.perf_counter() - start:.1f} s: "
            f"{len(items) - failed} ok or diverged, {failed} failed or not run"
        )
        return {i.index: codes[i.index] for i in items}

    def _finished(self, item, code, began, options, logs, done, items) -> None:
        state = _recorded_state(options, item)
        seconds = time.perf_counter() - began
        self.echo(
            f"[{done}/{len(items)}] #{item.index} {item.name} seed {item.seed}: {state} "
            f"(exit {code}, {seconds:.1f} s)"
        )
        if code not in (0, 3):
            for line in _tail(log_path(logs, item)):
                self.echo(f"    {line}")

    @staticmethod
    def _stop(procs: list[subprocess.Popen], sigterm: bool) -> None:
        """Let running items record ``interrupted``: a terminal's Ctrl-C reached them already
        (same process group); otherwise SIGTERM them. Kill whatever outlives the grace period."""
        if sigterm:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
