"""A runs folder for the terminal and for ``compare``: rows per run, summaries over seeds.

:func:`summaries` is the one producer of summaries: per group (an explicit grouping key: job,
cell, profile, and the config when asked) and per metric (an explicit filter), the statistics
over the seeds of the group's finished runs, in the shape of ``results.json``'s ``summaries``
(schema version 3): ``job``, ``cell``, ``profile``, ``metric``, ``n``, ``mean``, ``sd``,
``ci_low``, ``ci_high``, ``min``, ``max``, ``seeds`` with their ``values`` (one per seed, same
order; a clock's rows also their ``loads`` and machine ``identities``), ``diverged`` (runs of the
group that diverged or failed), ``fingerprints``, ``configs`` (the distinct resolved configs)
and ``machine`` (the identity and container-ness the runs share, their median load). The same
document, saved with ``runs --summary --json``, is a baseline ``compare`` reads; ``compare``
also reads version 2 (no per-seed values: Welch intervals only, no speed verdict).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mnist_suite import verdicts
from mnist_suite.envinfo import identity_of
from mnist_suite.errors import ConfigError
from mnist_suite.files import dumps
from mnist_suite.meanings import meaning
from mnist_suite.originals import RULE, Original, judge, original
from mnist_suite.records import number
from mnist_suite.runs import RunRecord, newest_code, scan
from mnist_suite.stats import summarize
from mnist_suite.text import printable

SCHEMA_VERSION = 3
# The figure a run is known by, in order of preference: the first one the run recorded.
HEADLINE = ("test_accuracy", "test_mse_pixels", "test_mse", "final_train_loss")
# The training clock without one-time process warm-up (imports, first trace, data read), and
# the whole run's; speed verdicts use the first.
SPEED = ("train_seconds", "wall_seconds")
GROUP = ("job", "cell", "profile")  # one summary per job, cell and profile
BY_CONFIG = (*GROUP, "config")  # ... and per resolved config (the report)
FAILED_STATES = ("diverged", "failed")


def headline_metric(metrics: dict) -> str | None:
    """The name of the run's headline figure (see :data:`HEADLINE`), or None."""
    return next((m for m in HEADLINE if m in metrics), None)


def declared_metric(job: str, metrics: dict) -> str | None:
    """The first figure ``job`` declares (``Job.metrics``) that ``metrics`` holds as a number:
    the headline of a job whose figures :data:`HEADLINE` does not name (a plugin's)."""
    from mnist_suite.jobs import find_job

    found = find_job(job, strict=False)
    declared = found.metrics if found is not None else {}
    return next((m for m in declared if number(metrics.get(m)) is not None), None)


def headline_and_speed(runs: list[RunRecord]) -> list[str]:
    """The metric filter of ``runs --summary`` and ``compare``: headline figure and clocks."""
    first = None
    if runs:
        first = headline_metric(runs[0].metrics) or declared_metric(runs[0].job, runs[0].metrics)
    return [m for m in (first, *SPEED) if m]


def every_number(runs: list[RunRecord]) -> list[str]:
    """The metric filter of the report: every numeric metric any of the runs recorded."""
    return sorted(
        {
            k
            for r in runs
            for k, v in r.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    )


def run_row(run: RunRecord, current: str | None) -> dict[str, Any]:
    """One run as ``runs`` shows it (``current``: this source's fingerprint for the job)."""
    metric = headline_metric(run.metrics) or declared_metric(run.job, run.metrics)
    return {
        "job": run.job,
        "cell": run.cell,
        "profile": run.profile,
        "seed": run.seed,
        "state": run.shown_state(current),
        "code": run.code_state(current),
        "fingerprint": run.fingerprint,
        "metric": metric,
        "value": run.metric(metric) if metric else None,
        "wall_seconds": run.wall_seconds,
        "finished_at": run.finished_at or None,
        "run_id": run.run_id,
        "path": str(run.path),
        "problem": run.problem,
    }


def _key(run: RunRecord, by: Sequence[str]) -> tuple:
    return tuple(
        json.dumps(run.config, sort_keys=True) if k == "config" else getattr(run, k) for k in by
    )


def _groups(
    records: Iterable[RunRecord], by: Sequence[str] = GROUP
) -> dict[tuple, list[RunRecord]]:
    """Finished, diverged and failed runs per group (diverged ones count against a group).

    Grouped without the config, a group of several configs (a lever tried beside the
    default) is its config with the most finished runs, the newest on ties: the seeds of
    different configs are never pooled, nor is one seed counted twice.
    """
    groups: dict[tuple, list[RunRecord]] = {}
    for run in records:
        if run.state == "done" or run.state in FAILED_STATES:
            groups.setdefault(_key(run, by), []).append(run)
    if "config" not in by:
        groups = {key: _one_config(runs) for key, runs in groups.items()}
    return dict(sorted(groups.items()))


def _load(run: RunRecord) -> float | None:
    """The 1-minute load average when the run started (None if not recorded)."""
    load = run.envelope["machine_info"].get("load_average")
    if isinstance(load, list) and load and isinstance(load[0], int | float):
        return float(load[0])
    return None


def _identity(run: RunRecord) -> dict[str, str] | None:
    """The run's machine identity, checked (None if it records none, or an incomplete one)."""
    return identity_of(run.envelope["machine_info"].get("identity"))


def _one_config(runs: list[RunRecord]) -> list[RunRecord]:
    configs: dict[str, list[RunRecord]] = {}
    for run in runs:
        configs.setdefault(_key(run, ("config",))[0], []).append(run)
    return max(
        configs.values(),
        key=lambda rs: (sum(r.state == "done" for r in rs), max(r.started_at for r in rs)),
    )


def machine(runs: list[RunRecord]) -> dict[str, Any]:
    """Where the runs ran: the ``identity`` (:func:`mnist_suite.envinfo.machine_identity`) and
    ``in_container`` they share (None if they differ or one does not say) and ``load`` (the
    median 1-minute load average at their start)."""
    identities = {json.dumps(_identity(run), sort_keys=True) for run in runs}
    containers = {run.envelope["machine_info"].get("in_container") for run in runs}
    loads = [load for load in map(_load, runs) if load is not None]
    return {
        "identity": json.loads(identities.pop()) if len(identities) == 1 else None,
        "in_container": containers.pop() if len(containers) == 1 else None,
        "load": statistics.median(loads) if loads else None,
    }


def summaries(
    records: Iterable[RunRecord],
    by: Sequence[str] = GROUP,
    metrics: Callable[[list[RunRecord]], list[str]] = headline_and_speed,
) -> list[dict[str, Any]]:
    """Statistics over seeds per group (``by``: :data:`GROUP` or :data:`BY_CONFIG`) and per
    metric ``metrics(done runs)`` names, of the finished runs.

    A group whose every run diverged or failed still has its rows (``n`` 0, ``diverged``
    counted): a job that diverged everywhere does not vanish from a comparison.
    """
    out = []
    for _, group in _groups(records, by).items():
        done = sorted(
            (r for r in group if r.state == "done"), key=lambda r: (r.seed is None, r.seed or 0)
        )
        diverged = len(group) - len(done)
        names = metrics(done) if done else [headline_metric(group[0].metrics) or HEADLINE[0]]
        configs = []
        for run in done:
            if run.config not in configs:
                configs.append(run.config)
        first = group[0]
        for name in names:
            s = summarize(run.metric(name) for run in done)
            if done and s.n == 0:
                continue  # a metric these runs do not record
            measured = [r for r in done if r.metric(name) is not None]
            out.append(
                {
                    "job": first.job,
                    "cell": first.cell,
                    "profile": first.profile,
                    "metric": name,
                    **{k: getattr(s, k) for k in ("n", "mean", "sd", "ci_low", "ci_high")},
                    "min": s.min,
                    "max": s.max,
                    "seeds": [r.seed for r in measured],
                    "values": [r.metric(name) for r in measured],
                    **(_where(measured) if name in SPEED else {}),
                    "diverged": diverged,
                    "fingerprints": sorted({r.fingerprint or "unknown" for r in done}),
                    "configs": configs,
                    "machine": machine(done),
                }
            )
    return out


def _where(runs: list[RunRecord]) -> dict[str, list]:
    """A clock's context per seed, in the order of ``seeds``: the 1-minute load at each run's
    start and the identity of the machine it ran on (None where a run does not say). A speed
    verdict paired on some of the seeds compares the machine and load of those seeds."""
    return {
        "loads": [_load(r) for r in runs],
        "identities": [_identity(r) for r in runs],
    }


def summary_document(records: Iterable[RunRecord], source: str) -> dict[str, Any]:
    """A baseline: ``{"schema_version": 3, "source": ..., "summaries": [...]}``."""
    from mnist_suite.envinfo import commit_info

    commit = commit_info()
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "commit": commit["id"][:10] + (" (dirty)" if commit["dirty"] else ""),
        "summaries": summaries(records),
    }


# A classifier's speed figure (the report's "s to 98% dev"): seconds to this dev accuracy, by
# its key in a run's ``time_to_target`` (mnist_suite.targets.target_key).
SPRINT_TARGET = "0.98"


def time_to_target(runs: list[RunRecord], target: str = SPRINT_TARGET) -> float | None:
    """Median seconds to ``target`` dev accuracy, as the report's headline gives it: None
    unless every run reached it (a median over the seeds that got there would flatter)."""
    seconds = []
    for run in runs:
        clock = run.metrics.get("time_to_target")
        reached = clock.get("seconds") if isinstance(clock, dict) else None
        value = number(reached.get(target)) if isinstance(reached, dict) else None
        if value is None:
            return None
        seconds.append(value)
    return statistics.median(seconds) if seconds else None


def _shown_metric(job: str, cell: str, metrics: dict) -> str | None:
    """The figure a group is shown by: the first of :data:`HEADLINE` its runs recorded and its
    own original printed (ae-original's z-scored MSE, the sweep's loss), else its headline."""
    own = [m for m in HEADLINE if m in metrics and _own(original(job, m, cell), job)]
    return own[0] if own else headline_metric(metrics) or declared_metric(job, metrics)


def _own(found: Original | None, job: str) -> bool:
    """Is ``found`` a figure ``job`` itself reproduces (not that of a job it improves on)?"""
    return found is not None and found.job == job


def headline_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """The headline figures per job/cell/profile: n, mean ± CI, the original's figure with its
    predictive p-value and verdict (:func:`mnist_suite.originals.judge`; a faithful job's own
    figure only), median seconds to 98% dev accuracy."""
    rows = []
    for (job, cell, profile), runs in _groups(records).items():
        runs = [r for r in runs if r.state == "done"]
        metric = _shown_metric(job, cell, runs[0].metrics) if runs else None
        if metric is None:
            continue
        s = summarize(r.metric(metric) for r in runs)
        found = original(job, metric, cell)
        judged = judge(found, s) if _own(found, job) else None
        rows.append(
            {
                "job": job,
                "cell": cell,
                "profile": profile,
                "metric": metric,
                "n": s.n,
                "mean": s.mean,
                "half_width": s.half_width,
                "original": found.value if found else None,
                "original_p": judged.p if judged else None,
                "original_is": judged.text if judged else None,
                "time_to_target": time_to_target(runs),
                "fingerprints": sorted({r.fingerprint or "unknown" for r in runs}),
            }
        )
    return rows


def fmt(value: float | None, metric: str = "") -> str:
    """A figure as text (:meth:`~mnist_suite.meanings.Meaning.text`: accuracies in percent,
    others to 4 significant digits); "-" if None."""
    return meaning(metric).text(value)


def mean_ci(mean: float | None, half: float | None, metric: str) -> str:
    """``mean ± half`` as text (:meth:`~mnist_suite.meanings.Meaning.interval_text`:
    accuracies in percent)."""
    return meaning(metric).interval_text(mean, half)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain, left-aligned text table, each cell on one line with its control characters
    escaped: names, configs and problems come from the runs folder, and no escape sequence,
    carriage return or newline in them reaches the terminal."""
    rows = [[printable(v) for v in row] for row in [header, *rows]]
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def run_rows_text(rows: list[dict[str, Any]]) -> str:
    """The ``runs`` table: one line per run, then the counts per state."""
    header = ["state", "job", "cell", "profile", "seed", "headline", "wall", "finished", "code"]
    header.append("run id")
    lines = []
    for r in rows:
        headline = f"{r['metric']}={fmt(r['value'], r['metric'])}" if r["metric"] else ""
        code = (r["fingerprint"] or "-") + ("" if r["code"] == "current" else f" ({r['code']})")
        lines.append(
            [
                r["state"],
                r["job"],
                r["cell"] or "-",
                r["profile"],
                "-" if r["seed"] is None else str(r["seed"]),
                r["problem"] or headline or "-",
                "-" if r["wall_seconds"] is None else f"{r['wall_seconds']:.1f}s",
                (r["finished_at"] or "-")[:19].replace("T", " "),
                code,
                r["run_id"] or "-",
            ]
        )
    states = [r["state"] for r in rows]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    return f"{table(header, lines)}\n{len(rows)} runs: {counts}"


def left_out_lines(records: list[RunRecord]) -> list[str]:
    """One line per run whose records could not be read or do not fit: state, path, why."""
    return [printable(f"{r.state}: {r.path}: {r.problem}") for r in records if not r.readable]


def summary_text(records: list[RunRecord]) -> str:
    """The headline table (``runs --summary``), then the runs left out of it as unreadable or
    corrupt, one line each."""
    rows = headline_rows(records)
    unread = left_out_lines(records)
    if not rows:
        return "\n".join(["no finished runs to summarise", *unread])
    header = ["job", "cell", "profile", "metric", "n", "mean ± 95% CI", "original", "p"]
    header += ["original vs ours", "s to 98%", "code"]
    lines = [
        [
            r["job"],
            r["cell"] or "-",
            r["profile"],
            r["metric"],
            str(r["n"]),
            mean_ci(r["mean"], r["half_width"], r["metric"]),
            fmt(r["original"], r["metric"]),
            "-" if r["original_p"] is None else verdicts.p_text(r["original_p"]),
            r["original_is"] or "-",
            "-" if r["time_to_target"] is None else f"{r['time_to_target']:.1f}",
            ",".join(r["fingerprints"]) + (" MIXED" if len(r["fingerprints"]) > 1 else ""),
        ]
        for r in rows
    ]
    return "\n".join([table(header, lines), RULE, *unread])


def listing(
    runs: Path, job: str | None, *, summary: bool, as_json: bool, all_code: bool
) -> tuple[str, int]:
    """What the ``runs`` command prints: (the text, how many runs of older code it left out).

    The runs of ``job`` (None: every job) in the folder ``runs``, each job's newest code unless
    ``all_code``: one row per run, or with ``summary`` the headline table; as JSON with
    ``as_json`` (the summary document is a baseline ``compare`` reads).
    """
    from mnist_suite.fingerprint import for_job_name

    if job is not None and not job.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"job {job!r}: expected a job name (mnist-suite list)")
    records = scan(runs, job)
    if not records:
        where = f"{runs}/{job}" if job else str(runs)
        missing = "" if Path(runs).is_dir() else " (no such folder)"
        return printable(f"no runs in {where}{missing}"), 0
    left_out = 0
    if not all_code:
        records, left_out = newest_code(records)
    if summary:
        doc = summary_document(records, str(runs))
        return (dumps(doc) if as_json else summary_text(records)), left_out
    rows = [run_row(r, for_job_name(r.job)) for r in records]
    if as_json:
        return dumps({"runs": rows}), left_out
    return run_rows_text(rows), left_out
