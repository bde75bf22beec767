"""An item's expected seconds, the one estimate behind the pool's order and its ETA.

The order: the longest expected first.

With W workers, a long item started last leaves W - 1 workers idle while it runs; started
first, the short ones fill in around it. An item's expected seconds are the median item time
(``item_seconds``, else ``wall_seconds``) of the finished runs of its job, cell and profile in
the runs folder, whatever their seed or code; an item never run before takes its job's
estimate for its cell. Ties keep the plan's order. The ETA
(:class:`mnist_suite.launch.watch.PoolProgress`) scales the same figures by how long this pool's
finished items took against theirs.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from mnist_suite.plan import WorkItem


def recorded_seconds(runs: Path, jobs: set[str]) -> dict[tuple[str, str, str], float]:
    """Median recorded seconds per (job, cell, profile) of finished runs under ``runs``."""
    from mnist_suite.runs import FINAL_STATES, find_runs, load_run

    seen: dict[tuple[str, str, str], list[float]] = {}
    for job in sorted(jobs):
        for path in find_runs(runs, job):
            run = load_run(path)
            if run.state not in FINAL_STATES:
                continue
            seconds = run.metric("item_seconds") or run.wall_seconds
            if seconds is not None:
                seen.setdefault((run.job, run.cell, run.profile), []).append(seconds)
    return {key: statistics.median(values) for key, values in seen.items()}


def expected_seconds(items: list[WorkItem], runs: Path) -> dict[int, float]:
    """Each item's expected seconds by plan index (recorded, else the job's estimate)."""
    from mnist_suite.jobs import get_job

    recorded = recorded_seconds(runs, {item.job for item in items})
    expected = {}
    for item in items:
        estimate = get_job(item.job).expected_seconds(item.cell, item.profile)
        expected[item.index] = recorded.get((item.job, item.cell, item.profile), estimate)
    return expected


def longest_first(items: list[WorkItem], expected: dict[int, float]) -> list[WorkItem]:
    """``items`` with the longest ``expected`` first (:func:`expected_seconds`; a stable sort:
    ties keep the plan's order)."""
    return sorted(items, key=lambda item: -expected[item.index])
