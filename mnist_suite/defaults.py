"""The defaults every command shares, written down once: runs folder, profiles, bench folder."""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("quick", "full")
RUNS_VARIABLE = "MNIST_SUITE_RUNS"
BENCH_RESULTS = Path("bench/results")
REPORT_FOLDER = Path("reports")


def runs_folder() -> Path:
    """The runs folder when no ``--runs`` is given: ``$MNIST_SUITE_RUNS``, else ``./runs``."""
    return Path(os.environ.get(RUNS_VARIABLE) or "runs")


def default_workers(cores: int | None = None) -> int:
    """Workers of the local pool when ``--workers`` is not given: one per usable core."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
    return max(1, cores)
