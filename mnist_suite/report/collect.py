"""Reading run directories and benchmark results defensively: a reader never trusts a file.

Every accessor returns None (or an empty container) for what is missing, torn or malformed,
so a report over half-finished, failed or interrupted runs still builds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_suite.files import load_json
from mnist_suite.records import number as number  # the sections read numbers through here
from mnist_suite.runs import RunRecord, scan

log = logging.getLogger(__name__)
MAX_BENCH_BYTES = 64 << 20  # one pytest-benchmark JSON file (real ones are well under 1 MB)


def as_dict(obj: Any) -> dict:
    """``obj`` if it is a dict, else an empty one: for reading JSON of unknown shape."""
    return obj if isinstance(obj, dict) else {}


def collect_runs(runs_dirs: Path | Sequence[Path]) -> list[RunRecord]:
    """Every run directory under the runs folder(s) (:func:`mnist_suite.runs.scan`: corrupt
    and unreadable ones too), sorted by job and run id.

    The same run (job and run id: cell, profile, seed and config) found in several folders,
    say copied back from two clusters, is one record: the finished one, else one that reads,
    else the newest.
    """
    dirs = [runs_dirs] if isinstance(runs_dirs, str | Path) else list(runs_dirs)
    unique: dict[tuple[str, str], RunRecord] = {}
    for record in (r for d in dirs for r in scan(d)):
        key = (record.job, record.run_id)
        if key not in unique or _freshness(record) > _freshness(unique[key]):
            unique[key] = record
    return sorted(unique.values(), key=lambda r: (r.job, r.run_id))


def _freshness(run: RunRecord) -> tuple:
    return (run.state == "done", run.readable, run.started_at)


@dataclass
class BenchFile:
    """One pytest-benchmark JSON file."""

    path: Path
    machine_info: dict
    commit_info: dict
    datetime: str
    benchmarks: list[dict]
    targets: list[dict]  # bench/conftest.py's verdicts: benchmark, metric, value, target, met


def collect_benchmarks(bench_dir: Path | None) -> list[BenchFile]:
    """pytest-benchmark JSON files in ``bench_dir`` (files that are not are skipped)."""
    if bench_dir is None or not Path(bench_dir).is_dir():
        return []
    files = []
    for path in sorted(Path(bench_dir).glob("*.json")):
        try:  # bounded, a regular file only: a FIFO or /dev/zero link planted here is skipped
            data = load_json(path, MAX_BENCH_BYTES)
        except (OSError, ValueError) as exc:
            log.warning("%s: not readable JSON (%s)", path, getattr(exc, "strerror", None) or exc)
            continue
        benches = data.get("benchmarks") if isinstance(data, dict) else None
        if not isinstance(benches, list):
            log.warning("%s: no 'benchmarks' list; not a pytest-benchmark file", path)
            continue
        files.append(
            BenchFile(
                path=path,
                machine_info=as_dict(data.get("machine_info")),
                commit_info=as_dict(data.get("commit_info")),
                datetime=str(data.get("datetime") or ""),
                benchmarks=[b for b in benches if isinstance(b, dict)],
                targets=[t for t in data.get("targets") or [] if isinstance(t, dict)],
            )
        )
    return files
