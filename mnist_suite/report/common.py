"""What every section builder shares: the context, run states as text, the history rows of curves.

A builder gets the :class:`Context` (all runs, benchmark files, the figure writer) and returns a
:class:`Section`; absent jobs, failed/diverged/interrupted/running runs and missing artifacts
become notes and table states, never exceptions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from mnist_suite.report.collect import BenchFile, RunRecord
from mnist_suite.report.figures import FigureWriter

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a section builder reads (all runs and benchmark files) and where it draws."""

    runs: list[RunRecord]
    benches: list[BenchFile]
    writer: FigureWriter
    runs_dir: Path | str  # one runs folder, or several joined by ", "
    bench_dir: Path | None
    baseline: Path | None = None  # what `compare` reads: the "Changes against a baseline" section
    # Every run found, of any code (``runs`` holds each job's newest code only): the variants.
    every_code: list[RunRecord] = dataclasses.field(default_factory=list)
    # Runs whose records cannot be read or do not fit (corrupt, unreadable): only the inventory
    # lists them; every other section is built without them.
    unread: list[RunRecord] = dataclasses.field(default_factory=list)


def state_text(run: RunRecord | None) -> str:
    """'done', 'diverged @ step 120', 'failed: ValueError …', 'missing'."""
    if run is None:
        return "missing"
    if run.state == "diverged":
        step = run.metric("diverged_at_step")
        return f"diverged @ step {step:.0f}" if step is not None else "diverged"
    if run.state in ("corrupt", "unreadable"):
        return f"{run.state}: {run.problem}"  # short by construction: names the file and why
    if run.state in ("failed", "interrupted") and run.message:
        return f"{run.state}: {run.message[:80]}"
    return run.state


def missing_note(jobs: list[str], what: str) -> str:
    return f"No runs of {', '.join(jobs)}: {what}."


# Fields of a history row that place it rather than measure something: ``step`` is the optimizer
# step, ``epoch`` an epoch row's epoch, ``k`` a PCA row's latent size.
POSITION_FIELDS = ("kind", "step", "epoch", "k", "time")
# eval rows are one final scoring, except in older records of softmax-original: its evaluations.
CURVE_KINDS = ("epoch", "step", "eval")


def curve_x(row: dict, kind: str) -> object:
    """Where ``row`` sits on its ``kind``'s curve: an epoch row at its epoch (older records keep
    it in ``step``), any other at its step."""
    return row.get("epoch", row.get("step")) if kind == "epoch" else row.get("step")


def curve_kind(run: RunRecord) -> str | None:
    """The history kind to draw curves from: of the kinds with at least two rows, the one
    measuring the most losses and accuracies, then the one with more rows (per-epoch curves for
    most jobs; the evaluations within the one epoch of per-sample SGD or the mini-batch draws
    of mlp-original; a lone final evaluation never)."""
    best, best_mark = None, (0, 0)
    for kind in CURVE_KINDS:
        rows = run.rows(kind)
        measured = {k for r in rows for k in r if k.endswith(("loss", "accuracy"))}
        mark = (len(measured), len(rows))
        if len(rows) >= 2 and measured and mark > best_mark:
            best, best_mark = kind, mark
    return best


def registry() -> dict:
    """The job registry (what each job is, what it reproduces), or {} if it cannot load.

    A job module that fails to import must not hide the results: the report then builds from
    the runs alone and logs why.
    """
    from mnist_suite.jobs import all_jobs

    try:
        return all_jobs()
    except Exception as exc:
        log.warning("job registry unavailable (%s)", exc)
        return {}


def _jsonable(value) -> str:
    return json.dumps(value, sort_keys=True, default=list)


def non_default(job_name: str, cell: str, profile: str, config: dict) -> list[str]:
    """``key=value`` of every config value that differs from the job's default for that
    profile (and cell)."""
    job = registry().get(job_name)
    if job is None:
        return []
    try:
        resolved = job.resolve(profile)
        resolved = dict(job.expand(resolved)).get(cell, resolved) if cell else resolved
        default = dataclasses.asdict(resolved)
    except (ValueError, TypeError):
        return []
    return [
        f"{k}={v}" for k, v in sorted(config.items())
        if k in default and _jsonable(default[k]) != _jsonable(v)
    ]  # fmt: skip
