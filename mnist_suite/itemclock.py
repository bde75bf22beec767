"""How long an item took in its process, start-up included, and how many items that process ran.

A run's own clocks (``wall_seconds``, ``train_seconds``) start once its job is running. What the
process spent before that (the interpreter, imports, TensorFlow's start, reading MNIST, the
plan) is the item's overhead: ``item_seconds - train_seconds``. The clock starts with the
process; a warm worker restarts it when it takes an item, and it restarts after every run, so
the second run of one process counts from the first one's end. ``process_item`` says which run
of its process this was (1: the first, which pays the imports).
"""

from __future__ import annotations

import os
import time


def _process_start() -> float:
    """This process's start on the monotonic clock (from the kernel's record, Linux), else now."""
    try:
        with open(f"/proc/{os.getpid()}/stat", "rb") as f:
            # Field 22 (starttime, clock ticks since boot) comes after the parenthesised name,
            # which may itself contain spaces or parentheses.
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic()
    return time.monotonic() - max(0.0, age)


_taken = _process_start()
_count = 0


def take() -> None:
    """A worker took an item now: its overhead counts from here."""
    global _taken
    _taken = time.monotonic()


def finished() -> dict[str, float | int]:
    """The figures of the run ending now (``item_seconds``, ``process_item``); restart."""
    global _count
    _count += 1
    figures = {"item_seconds": round(time.monotonic() - _taken, 3), "process_item": _count}
    take()
    return figures
