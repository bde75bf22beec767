"""The Python API: what the command line reads and prints, as Python objects (docs/api.md).

:func:`load_runs` gives the run records every reader of a runs folder gets
(:class:`~mnist_suite.runs.RunRecord`), :func:`runs_dataframe` the same as a pandas DataFrame
with one row per run, :func:`summaries` the statistics over seeds that ``runs --summary
--json`` prints (:func:`mnist_suite.summary.summaries`), :func:`compare` the rows of
``mnist-suite compare`` (:mod:`mnist_suite.compare`) and :func:`failing` the lines that fail
them under ``--fail-on`` and ``--require``. Each reads what the command reads, the
same way: each job at its newest code unless ``all_code``. Errors are the library's
(:mod:`mnist_suite.errors`): a path with nothing to read is a ConfigError.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_suite.errors import ConfigError
from mnist_suite.stats import CONFIDENCE

if TYPE_CHECKING:
    import pandas

    from mnist_suite.runs import RunRecord

PANDAS_MISSING = "runs_dataframe needs pandas: pip install 'mnist-suite[pandas]'"
# The columns of runs_dataframe before the config fields and the metrics.
RUN_COLUMNS = (
    "job", "cell", "profile", "seed", "state", "fingerprint", "commit", "run_id",
    "started_at", "finished_at", "problem",
)  # fmt: skip


def _records(path: str | os.PathLike, all_code: bool) -> list[RunRecord]:
    from mnist_suite.runs import newest_code, scan

    folder = Path(path)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise ConfigError(f"runs {folder}: {what} (expected a runs folder)")
    records = scan(folder)
    return records if all_code else newest_code(records)[0]


def load_runs(path: str | os.PathLike, *, all_code: bool = False) -> list[RunRecord]:
    """Every run in the runs folder ``path``, read and checked, sorted by job and run id.

    Parameters
    ----------
    path : str or path-like
        A runs folder (``runs/``: ``<job>/<run-id>/`` folders).
    all_code : bool
        Every version of each job's code; by default each job's newest, the code of its latest
        run (as ``mnist-suite runs``).

    Returns
    -------
    list of RunRecord
        One per run folder, read entry by entry as ``runs`` reads them: a damaged one has
        ``state`` ``"corrupt"`` (one this user may not read ``"unreadable"``) and says why
        in ``problem``, never raises.
    """
    return _records(path, all_code)


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """``value`` under ``prefix`` as columns: objects spread with dots, lists as tuples."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = tuple(value) if isinstance(value, list) else value


def run_columns(run: RunRecord) -> dict[str, Any]:
    """One run as a DataFrame row: :data:`RUN_COLUMNS`, then ``config.<field>`` and
    ``metrics.<name>`` (nested figures as ``metrics.time_to_target.seconds.0.98``)."""
    commit = run.envelope["commit_info"].get("id")
    row = {
        "job": run.job,
        "cell": run.cell,
        "profile": run.profile,
        "seed": run.seed,
        "state": run.state,
        "fingerprint": run.fingerprint,
        "commit": commit if isinstance(commit, str) and commit else None,
        "run_id": run.run_id,
        "started_at": run.started_at or None,
        "finished_at": run.finished_at or None,
        "problem": run.problem,
    }
    _flat("config", run.config, row)
    _flat("metrics", run.metrics, row)
    return row


def runs_dataframe(path: str | os.PathLike, *, all_code: bool = False) -> pandas.DataFrame:
    """The runs of :func:`load_runs` as a pandas DataFrame, one row per run.

    Columns: ``job``, ``cell``, ``profile``, ``seed``, ``state``, ``fingerprint``, ``commit``,
    ``run_id``, ``started_at``, ``finished_at``, ``problem``, then ``config.<field>`` for the
    resolved config and ``metrics.<name>`` for the figures (lists as tuples; a figure a run
    did not record is missing). Needs the ``pandas`` extra (ImportError saying so otherwise).
    """
    try:
        import pandas
    except ImportError:
        raise ImportError(PANDAS_MISSING) from None
    rows = [run_columns(run) for run in _records(path, all_code)]
    frame = pandas.DataFrame(rows, columns=list(dict.fromkeys([*RUN_COLUMNS, *_keys(rows)])))
    return frame.astype({"seed": "Int64"})


def _keys(rows: list[dict]) -> list[str]:
    """The config and metric columns of ``rows``, config first, each sorted."""
    keys = {k for row in rows for k in row if k not in RUN_COLUMNS}
    return sorted(keys, key=lambda k: (not k.startswith("config."), k))


def summaries(
    path: str | os.PathLike,
    *,
    by_config: bool = False,
    every_metric: bool = False,
    all_code: bool = False,
) -> list[dict[str, Any]]:
    """Statistics over seeds per job, cell and profile: ``runs --summary --json``'s
    ``summaries`` (:func:`mnist_suite.summary.summaries`).

    Parameters
    ----------
    path : str or path-like
        A runs folder.
    by_config : bool
        One group per resolved config too (the report's grouping).
    every_metric : bool
        Every numeric figure the runs recorded; by default the headline figure
        (``test_accuracy``, ...) and the clocks (``train_seconds``, ``wall_seconds``).
    all_code : bool
        As in :func:`load_runs`.

    Returns
    -------
    list of dict
        One per group and metric: ``job``, ``cell``, ``profile``, ``metric``, ``n``, ``mean``,
        ``sd``, ``ci_low``, ``ci_high`` (95% Student t), ``min``, ``max``, ``seeds`` and their
        ``values``, ``diverged``, ``fingerprints``, ``configs``, ``machine``.
    """
    from mnist_suite import summary

    by = summary.BY_CONFIG if by_config else summary.GROUP
    metrics = summary.every_number if every_metric else summary.headline_and_speed
    return summary.summaries(_records(path, all_code), by=by, metrics=metrics)


@dataclass(frozen=True)
class CompareRow:
    """One row of ``mnist-suite compare``'s table (a row of its ``--json`` ``rows``).

    ``base`` and ``new`` are each side's figure (``n``, ``mean``, ``sd``, ``half_width``; a
    benchmark's quartiles), None for a side without it; ``diff`` is new − base with its
    interval ``[low, high]`` at ``level`` (simultaneous over the row's ``family``), ``p_value``
    its own p and ``p_adjusted`` Holm's over the family; ``verdict`` is one of
    :mod:`mnist_suite.verdicts`' words: ``equivalent`` when the interval lies inside
    ``±margin``, ``inconclusive`` (with ``seeds_to_decide``, the seeds that would likely decide
    it; None beyond 1000) when neither that nor better/worse is shown. :meth:`as_dict` gives
    the row with every field.
    """

    kind: str  # "run" or "benchmark"
    job: str
    cell: str
    profile: str
    metric: str
    verdict: str
    base: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    diff: float | None
    low: float | None
    high: float | None
    level: float | None
    p_value: float | None
    p_adjusted: float | None
    family: str  # the rows judged together: accuracy and loss, speed, benchmark ratios
    method: str  # "paired", "Welch" or "" (no interval)
    pairs: int  # seeds paired
    min_effect: float | None
    margin: float | None
    seeds_to_decide: int | None
    note: str
    config_changes: str
    mixed_code: tuple[str, ...]
    _row: Mapping[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CompareRow:
        values = {f.name: row.get(f.name) for f in fields(cls) if f.name != "_row"}
        return cls(**values | {"mixed_code": tuple(row.get("mixed_code") or ())}, _row=row)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._row)


def compare(
    base: str | os.PathLike,
    new: str | os.PathLike,
    *,
    min_effect: Mapping[str, float | str] | None = None,
    margin: Mapping[str, float | str] | None = None,
    confidence: float = CONFIDENCE,
) -> list[CompareRow]:
    """``mnist-suite compare BASE NEW`` on two paths: the rows of its table.

    Parameters
    ----------
    base, new : str or path-like
        Each a runs folder, a report's ``results.json``, a baseline (``runs --summary
        --json``) or benchmark results (git revisions are the command line's: they run code).
    min_effect : mapping, optional
        A metric's minimum effect, absolute (``{"test_accuracy": 0.005}``) or relative
        (``{"train_seconds": "20%"}``), as ``--min-effect``.
    margin : mapping, optional
        A metric's equivalence margin, the same way, as ``--margin`` (default: its minimum
        effect).
    confidence : float
        Coverage of the intervals, as ``--confidence``.

    Returns
    -------
    list of CompareRow
        In the table's order. ConfigError when the sides cannot be read or share nothing.
    """
    from mnist_suite import compare as comparing

    options = comparing.CompareOptions(
        min_effect=_pairs(min_effect), margin=_pairs(margin), confidence=confidence
    )
    rules = options.rules()
    sides = [comparing.load_side(Path(p)) for p in (base, new)]
    if not comparing.shared(*sides):
        raise ConfigError(f"{base} and {new} share no job, cell, profile or benchmark")
    return [CompareRow.from_row(r) for r in comparing.compare(*sides, rules, confidence)]


def _pairs(amounts: Mapping[str, float | str] | None) -> tuple[str, ...]:
    return tuple(f"{metric}={value}" for metric, value in (amounts or {}).items())


def failing(
    rows: list[CompareRow],
    *,
    fail_on: str | None = None,
    require: str | None = None,
    fail_metric: tuple[str, ...] = (),
) -> list[str]:
    """The lines ``mnist-suite compare`` prints after ``failing:`` for these rows: with
    ``fail_on="worse"`` each worse row and each it could not judge, with
    ``require="equivalent"`` each run row not equivalent, identical or better; only those of
    ``fail_metric`` when given. An empty list passes."""
    from mnist_suite import compare as comparing

    asked = (("fail_on", fail_on, "worse"), ("require", require, "equivalent"))
    for name, value, allowed in asked:
        if value not in (None, allowed):
            raise ConfigError(f"{name} {value!r}: expected {allowed!r} or None")
    options = comparing.CompareOptions(
        fail_on=fail_on, require=require, fail_metric=tuple(fail_metric)
    )
    options.rules()  # a fail metric no rule knows is refused, as on the command line
    return comparing.failing([r.as_dict() for r in rows], options)
