"""The pool's progress: one overall status line on a terminal, one line per event elsewhere.

The status line counts items done, running, failed, skipped and held elsewhere (another pool's
live claim) of the total, the elapsed time,
an ETA and the running items' latest epoch (read from their ``history.jsonl``). The ETA sums,
over the items not finished, their expected seconds (:func:`mnist_suite.schedule
.expected_seconds`, the estimate the pool's order comes from) at this pool's pace: how long
its finished items of the same job took against theirs, or of every job while none of that job
has finished (1 before any has); less what a running item has already spent; divided by the
workers. Scaling the estimates, rather than averaging the first finished items, keeps a suite
that starts with its longest items from extrapolating them to the short ones; a pace per job
keeps a job whose estimates run fast on this machine from speaking for one whose run slow.
Without a terminal (CI logs, pipes) every
start, finish and skip is a line of its own, carrying the same counts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import TextIO

from mnist_suite.errors import EXIT_RESULTS
from mnist_suite.plan import WorkItem, run_dir
from mnist_suite.text import printable

REDRAW_SECONDS = 1.0
TAIL_BYTES = 8192  # enough for the last few history rows


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``)."""
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def latest_epoch(path: Path) -> str:
    """The last ``epoch`` row of a ``history.jsonl`` as ``epoch N name=value …`` (or "")."""
    try:
        tail = read_tail(path, TAIL_BYTES)
    except OSError:
        return ""
    lines = tail.split(b"\n")[:-1]  # the part after the last newline may be torn
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("kind") == "epoch":
            values = " ".join(
                f"{k}={v:.4g}"
                for k, v in row.items()
                if k not in ("kind", "step", "epoch", "time") and isinstance(v, int | float)
            )
            # ``step`` is the optimizer step; older records keep the epoch there.
            epoch = row.get("epoch", row.get("step"))
            return printable(f"epoch {epoch} {values}".strip())
    return ""


def read_tail(path: Path, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of the regular file ``path``, opened without following a link or
    blocking: a FIFO, a device or a link planted there is an OSError, never a hang."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.pread(fd, max_bytes, max(0, st.st_size - max_bytes))
    finally:
        os.close(fd)


class PoolProgress:
    """Events of a pool of ``workers`` over ``items``, shown live or as lines.

    Parameters
    ----------
    items : list of WorkItem
        The whole batch, for the total and the ETA.
    expected : dict of int to float
        Each item's expected seconds by plan index (:func:`mnist_suite.schedule
        .expected_seconds`).
    runs : Path
        The runs folder (recorded wall times, running items' history).
    echo : callable
        Where event lines go.
    live : TextIO or None
        A terminal to redraw the status line on; None prints events as lines only.
    """

    def __init__(
        self, items: list[WorkItem], expected: dict[int, float], runs: Path, workers: int, echo,
        live=None,
    ):  # fmt: skip
        self.total = len(items)
        self.runs = Path(runs)
        self.workers = max(1, workers)
        self.echo = echo
        self.live: TextIO | None = live
        self.start = time.perf_counter()
        self.expected = expected
        self.pending = {i.index: i for i in items}
        self.running: dict[int, tuple[WorkItem, float]] = {}
        # Finished items, per job and in all ("" key): seconds they took, seconds expected.
        self.took: dict[str, list[float]] = {"": [0.0, 0.0]}
        self.counts = {"done": 0, "failed": 0, "skipped": 0, "held": 0}
        self._drawn = 0.0

    @staticmethod
    def for_terminal(stream: TextIO | None = None) -> TextIO | None:
        """``stream`` (standard error as it is now) when it is a terminal, else None (events as
        lines); a closed stream is no terminal."""
        stream = sys.stderr if stream is None else stream
        try:
            return stream if stream.isatty() else None
        except (AttributeError, ValueError):
            return None

    def pace(self, job: str = "") -> float:
        """How long this pool's finished items of ``job`` took against their expected seconds;
        of every job when none of ``job`` has finished ("": every job); 1 before any has."""
        took, expected = self.took.get(job) or self.took[""]
        if not (took > 0 and expected > 0):
            took, expected = self.took[""]
        return took / expected if took > 0 and expected > 0 else 1.0

    def eta(self) -> float:
        """Seconds until every item has finished: each pending item's expected seconds at this
        pool's pace for its job, less what a running one has spent, over the workers."""
        now = time.perf_counter()
        left = 0.0
        for index, item in self.pending.items():
            guess = self.pace(item.job) * self.expected.get(index, 0.0)
            began = self.running.get(index, (item, None))[1]
            left += max(0.0, guess - (now - began)) if began is not None else guess
        return left / self.workers

    def status(self) -> str:
        """``done 3 · running 2 · failed 0 · skipped 1 of 9 · 0:35 elapsed · ETA 0:40``."""
        c = self.counts
        eta = self.eta()
        held = f"· held elsewhere {c['held']} " if c["held"] else ""
        return (
            f"done {c['done']} · running {len(self.running)} · failed {c['failed']} · "
            f"skipped {c['skipped']} {held}of {self.total} · "
            f"{clock(time.perf_counter() - self.start)} elapsed"
            + (f" · ETA {clock(eta)}" if self.pending else "")
        )

    def _line(self, text: str) -> None:
        if self.live is not None:
            self.live.write("\r\033[K")
        self.echo(text)
        self._draw(force=True)

    def started(self, item: WorkItem) -> None:
        self.running[item.index] = (item, time.perf_counter())
        if self.live is None:
            self.echo(
                f"start #{item.index} {printable(item.name)} seed {item.seed} ({self.status()})"
            )
        else:
            self._draw(force=True)

    def skipped(self, item: WorkItem, why: str) -> None:
        self.pending.pop(item.index, None)
        self.counts["skipped"] += 1
        self._line(f"[{self._finished()}/{self.total}] #{item.index} {printable(item.name)} "
                   f"seed {item.seed}: skipped ({printable(why)})")  # fmt: skip

    def held(self, item: WorkItem, why: str) -> None:
        """Another pool holds ``item`` (a live claim): not run here, and not a failure here."""
        self.running.pop(item.index, None)
        self.pending.pop(item.index, None)
        self.counts["held"] += 1
        self._line(f"[{self._finished()}/{self.total}] #{item.index} {printable(item.name)} "
                   f"seed {item.seed}: held elsewhere ({printable(why)})")  # fmt: skip

    def refused(self, item: WorkItem, why: str) -> None:
        """``item`` could not be started (its log refused): a failure, with no process."""
        self.pending.pop(item.index, None)
        self.counts["failed"] += 1
        self._line(f"[{self._finished()}/{self.total}] #{item.index} {printable(item.name)} "
                   f"seed {item.seed}: not started ({printable(why)})")  # fmt: skip

    def finished(self, item: WorkItem, state: str, code: int, seconds: float) -> None:
        self.running.pop(item.index, None)
        self.pending.pop(item.index, None)
        if code in EXIT_RESULTS and self.expected.get(item.index):
            for key in ("", item.job):
                totals = self.took.setdefault(key, [0.0, 0.0])
                totals[0] += seconds
                totals[1] += self.expected[item.index]
        self.counts["done" if code in EXIT_RESULTS else "failed"] += 1
        self._line(
            f"[{self._finished()}/{self.total}] #{item.index} {printable(item.name)} "
            f"seed {item.seed}: {printable(state)} (exit {code}, {seconds:.1f} s) · {self.status()}"
        )

    def _finished(self) -> int:
        return sum(self.counts.values())

    def tick(self) -> None:
        """Redraw the status line (at most once a second) with the running items' epochs."""
        self._draw(force=False)

    def _draw(self, force: bool) -> None:
        if self.live is None:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_SECONDS:
            return
        self._drawn = now
        epochs = []
        for item, _ in self.running.values():
            epoch = latest_epoch(run_dir(self.runs, item) / "history.jsonl")
            if epoch:
                epochs.append(f"{printable(item.name)} s{item.seed}: {epoch}")
        line = self.status() + (" | " + "; ".join(epochs) if epochs else "")
        width = shutil.get_terminal_size().columns - 1
        self.live.write("\r\033[K" + line[:width])
        self.live.flush()

    def close(self) -> None:
        if self.live is not None:
            self.live.write("\r\033[K")
            self.live.flush()
