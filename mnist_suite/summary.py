"""A runs folder for the terminal and for ``compare``: rows per run, summaries over seeds.

``summaries(records)`` gives, per job, cell, profile and compared metric, the statistics over
the seeds of its finished runs in the shape of ``results.json``'s ``summaries`` (version 2):
``job``, ``cell``, ``profile``, ``metric``, ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``,
``seeds``, ``fingerprints``, plus ``configs`` (the distinct resolved configs). The same
document, saved with ``runs --summary --json``, is a baseline ``compare`` reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mnist_suite.runs import RunRecord
from mnist_suite.stats import summarize

SCHEMA_VERSION = 2
# The figure a run is known by, in order of preference: the first one the run recorded.
HEADLINE = ("test_accuracy", "test_mse_pixels", "test_mse", "final_train_loss")
SPEED = "wall_seconds"


def headline_metric(metrics: dict) -> str | None:
    """The name of the run's headline figure (see :data:`HEADLINE`), or None."""
    return next((m for m in HEADLINE if m in metrics), None)


def run_row(run: RunRecord, current: str | None) -> dict[str, Any]:
    """One run as ``runs`` shows it (``current``: this source's fingerprint for the job)."""
    metric = headline_metric(run.metrics)
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


def _groups(records: Iterable[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in records:
        if run.state == "done":
            groups.setdefault((run.job, run.cell, run.profile), []).append(run)
    return dict(sorted(groups.items()))


def summaries(records: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """Statistics over seeds per (job, cell, profile, metric) of the finished runs."""
    out = []
    for (job, cell, profile), runs in _groups(records).items():
        runs = sorted(runs, key=lambda r: (r.seed is None, r.seed or 0))
        metric = headline_metric(runs[0].metrics)
        configs = []
        for run in runs:
            if run.config not in configs:
                configs.append(run.config)
        for name in [m for m in (metric, SPEED) if m]:
            s = summarize(run.metric(name) for run in runs)
            out.append(
                {
                    "job": job,
                    "cell": cell,
                    "profile": profile,
                    "metric": name,
                    "n": s.n,
                    "mean": s.mean,
                    "sd": s.sd,
                    "ci_low": s.ci_low,
                    "ci_high": s.ci_high,
                    "seeds": [r.seed for r in runs if r.metric(name) is not None],
                    "fingerprints": sorted({r.fingerprint or "unknown" for r in runs}),
                    "configs": configs,
                }
            )
    return out


def summary_document(records: Iterable[RunRecord], source: str) -> dict[str, Any]:
    """A baseline: ``{"schema_version": 2, "source": ..., "summaries": [...]}``."""
    from mnist_suite.envinfo import commit_info

    commit = commit_info()
    return {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "commit": commit["id"][:10] + (" (dirty)" if commit["dirty"] else ""),
        "summaries": summaries(records),
    }


def time_to_target(runs: list[RunRecord], target: str = "0.98") -> float | None:
    """Median seconds to ``target`` dev accuracy, as the report's headline gives it: None
    unless every run reached it (a median over the seeds that got there would flatter)."""
    import statistics

    seconds = []
    for run in runs:
        clock = run.metrics.get("time_to_target")
        value = clock.get("seconds", {}).get(target) if isinstance(clock, dict) else None
        if not isinstance(value, int | float):
            return None
        seconds.append(float(value))
    return statistics.median(seconds) if seconds else None


def headline_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """The report's headline figures per job/cell/profile: n, mean ± CI, the original's
    figure, median seconds to 98% dev accuracy."""
    from mnist_suite.report.original import original_figure

    rows = []
    for (job, cell, profile), runs in _groups(records).items():
        metric = headline_metric(runs[0].metrics)
        if metric is None:
            continue
        s = summarize(r.metric(metric) for r in runs)
        original, _ = original_figure(job, metric, cell)
        rows.append(
            {
                "job": job,
                "cell": cell,
                "profile": profile,
                "metric": metric,
                "n": s.n,
                "mean": s.mean,
                "half_width": s.half_width,
                "original": original,
                "time_to_target": time_to_target(runs),
                "fingerprints": sorted({r.fingerprint or "unknown" for r in runs}),
            }
        )
    return rows


def fmt(value: float | None, metric: str = "") -> str:
    """A figure as text: accuracies in percent, others to 4 significant digits; "-" if None."""
    if value is None:
        return "-"
    if "accuracy" in metric:
        return f"{100 * value:.2f}%"
    return f"{value:.4g}"


def mean_ci(mean: float | None, half: float | None, metric: str) -> str:
    """``mean ± half`` as text (accuracies in points)."""
    if mean is None:
        return "-"
    if half is None:
        return fmt(mean, metric)
    if "accuracy" in metric:
        return f"{100 * mean:.2f} ± {100 * half:.2f}%"
    return f"{mean:.4g} ± {half:.2g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain, left-aligned text table."""
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
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
                r["run_id"],
            ]
        )
    states = [r["state"] for r in rows]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    return f"{table(header, lines)}\n{len(rows)} runs: {counts}"


def summary_text(records: list[RunRecord]) -> str:
    """The headline table (``runs --summary``)."""
    rows = headline_rows(records)
    if not rows:
        return "no finished runs to summarise"
    header = ["job", "cell", "profile", "metric", "n", "mean ± 95% CI", "original", "s to 98%"]
    header.append("code")
    lines = [
        [
            r["job"],
            r["cell"] or "-",
            r["profile"],
            r["metric"],
            str(r["n"]),
            mean_ci(r["mean"], r["half_width"], r["metric"]),
            fmt(r["original"], r["metric"]),
            "-" if r["time_to_target"] is None else f"{r['time_to_target']:.1f}",
            ",".join(r["fingerprints"]) + (" MIXED" if len(r["fingerprints"]) > 1 else ""),
        ]
        for r in rows
    ]
    return table(header, lines)
