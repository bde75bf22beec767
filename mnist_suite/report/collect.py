"""Reading run directories and benchmark results defensively: a reader never trusts a file.

Every accessor returns None (or an empty container) for what is missing, torn or malformed,
so a report over half-finished, failed or interrupted runs still builds.
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnist_suite.files import npy_header
from mnist_suite.files import read_json_object as read_json
from mnist_suite.limits import MAX_ARTIFACT_BYTES
from mnist_suite.runs import find_runs, load_run

log = logging.getLogger(__name__)


def _dict(obj: Any) -> dict:
    return obj if isinstance(obj, dict) else {}


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN and nulls are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class RunRecord:
    """One run directory as the report sees it."""

    path: Path
    job: str
    cell: str
    profile: str
    seed: int | None
    state: str
    config: dict
    envelope: dict
    metrics: dict
    history: list[dict]
    message: str = ""
    started_at: str = ""
    _npz_cache: dict = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.job}/{self.cell}" if self.cell else self.job

    def metric(self, name: str) -> float | None:
        return number(self.metrics.get(name))

    def rows(self, kind: str | None = None) -> list[dict]:
        """History rows, optionally only one ``kind`` ("epoch", "eval", "batch", ...)."""
        return [r for r in self.history if kind is None or r.get("kind") == kind]

    def artifact_names(self) -> list[str]:
        folder = self.path / "artifacts"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def npz(self, name: str) -> dict[str, np.ndarray] | None:
        """Arrays of ``artifacts/<name>.npz`` (never unpickled), or None if absent/unreadable."""
        if name not in self._npz_cache:
            path = self.path / "artifacts" / f"{name}.npz"
            arrays = None
            if path.is_file():
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
        return read_json(self.path / "artifacts" / f"{name}.json")


def _check_declared_size(path: Path) -> None:
    """ValueError if the arrays of an ``.npz`` declare more than the report reads of one file."""
    total = 0
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            shape, dtype = npy_header(zf, member)
            total += math.prod(shape) * dtype.itemsize
    if total > MAX_ARTIFACT_BYTES:
        raise ValueError(f"its arrays declare {total} bytes, more than {MAX_ARTIFACT_BYTES}")


def collect_runs(runs_dirs: Path | Sequence[Path]) -> list[RunRecord]:
    """Every run directory under the runs folder(s) (``<job>/<run-id>/config.json``), sorted.

    The same run (job and run id: cell, profile, seed and config) found in several folders,
    say copied back from two clusters, is one record: the finished one, else the newest.
    """
    dirs = [runs_dirs] if isinstance(runs_dirs, str | Path) else list(runs_dirs)
    records = []
    for path in (p for d in dirs for p in find_runs(d)):
        run = load_run(path)
        cfg, status = _dict(run["config"]), _dict(run["status"])
        seed = cfg.get("seed")
        records.append(
            RunRecord(
                path=path,
                job=str(cfg.get("job") or path.parent.name),
                cell=str(cfg.get("cell") or ""),
                profile=str(cfg.get("profile") or "?"),
                seed=seed if isinstance(seed, int) else None,
                state=run["state"],
                config=_dict(cfg.get("config")),
                envelope={k: _dict(cfg.get(k)) for k in ("machine_info", "commit_info", "versions")}
                | {"datetime": str(cfg.get("datetime") or "")},
                metrics=_dict(run["metrics"]),
                history=[r for r in run["history"] if isinstance(r, dict)],
                message=run["problem"] or str(status.get("message") or ""),
                started_at=str(status.get("started_at") or cfg.get("datetime") or ""),
            )
        )
    unique: dict[tuple[str, str], RunRecord] = {}
    for record in records:
        key = (record.job, record.path.name)
        if key not in unique or _freshness(record) > _freshness(unique[key]):
            unique[key] = record
    return sorted(unique.values(), key=lambda r: (r.job, r.path.name))


def _freshness(run: RunRecord) -> tuple:
    return (run.state == "done", run.started_at)


def _preference(run: RunRecord) -> tuple:
    # The full profile over quick, a finished run over others, then the newest.
    return (run.profile == "full", run.state == "done", run.started_at)


def by_job(records: list[RunRecord], job: str) -> list[RunRecord]:
    return [r for r in records if r.job == job]


def pick(records: list[RunRecord], job: str) -> RunRecord | None:
    """The run that represents a single-cell ``job``: full profile, done, newest."""
    runs = by_job(records, job)
    return max(runs, key=_preference) if runs else None


def pick_cells(records: list[RunRecord], job: str) -> dict[str, RunRecord]:
    """One representative run per cell of a batch ``job``, cells in label order.

    All cells come from the preferred profile (full when any full cell exists), so a
    grid never mixes quick and full points.
    """
    runs = by_job(records, job)
    if not runs:
        return {}
    profile = "full" if any(r.profile == "full" for r in runs) else runs[0].profile
    cells: dict[str, RunRecord] = {}
    for run in sorted((r for r in runs if r.profile == profile), key=_preference):
        cells[run.cell] = run  # the last (most preferred) wins
    return dict(sorted(cells.items()))


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
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s: not readable JSON (%s)", path, exc)
            continue
        benches = data.get("benchmarks") if isinstance(data, dict) else None
        if not isinstance(benches, list):
            log.warning("%s: no 'benchmarks' list; not a pytest-benchmark file", path)
            continue
        files.append(
            BenchFile(
                path=path,
                machine_info=_dict(data.get("machine_info")),
                commit_info=_dict(data.get("commit_info")),
                datetime=str(data.get("datetime") or ""),
                benchmarks=[b for b in benches if isinstance(b, dict)],
                targets=[t for t in data.get("targets") or [] if isinstance(t, dict)],
            )
        )
    return files
