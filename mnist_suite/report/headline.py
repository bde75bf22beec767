"""The report's first screen: every job's answer in one table, the benchmark verdicts, and where
the figures came from; and the same figures as named records for ``results.json``.

A row is a group of runs over seeds (:mod:`mnist_suite.report.replicates`): ours as mean, 95%
interval and n, the original project's printed figure beside it and whether it lies inside our
interval, and for classifiers the median seconds to 98% dev accuracy.
"""

from __future__ import annotations

import math

from mnist_suite.originals import original_figure
from mnist_suite.report.classification import headline_groups
from mnist_suite.report.collect import number
from mnist_suite.report.common import Context, registry
from mnist_suite.report.document import Section, Table
from mnist_suite.report.replicates import Group, groups, pick_cell_groups
from mnist_suite.stats import summarize
from mnist_suite.summary import time_to_target

# The one figure each kind of job is judged by: (metric, how to format it, higher is better).
ACCURACY = ("test_accuracy", "pct", True)
RECONSTRUCTION = ("test_mse_pixels", "f4", False)
SWEEP = ("final_train_loss", "f4", False)
SPRINT_TARGET = "0.98"  # time to this dev accuracy is the classifiers' speed column


def _inside(g: Group, metric: str, value: float | None) -> str:
    if value is None:
        return ""
    inside = g.summary(metric).contains(value)
    if inside is None:
        return f"n={len(g.done)}: no interval"
    return "inside" if inside else "outside"


def _row(label: str, g: Group | None, metric: str, kind: str, original: float | None) -> list:
    s = g.summary(metric) if g else None
    ratio = None
    if g and metric in (RECONSTRUCTION[0], "test_mse"):
        ratio = g.summary("denoised_vs_noisy" if "denois" in g.cell else "mse_vs_pca").mean
    return [
        label,
        metric,
        s.n if s else 0,
        s.mean if s else None,
        s.half_width if s else None,
        original,
        _inside(g, metric, original) if g else "missing",
        ratio,
        time_to_target(g.done, SPRINT_TARGET) if g and metric == ACCURACY[0] else None,
        kind,
    ]


def _listed_row(label: str, g: Group, key: str, original: float) -> list:
    """A row for ``key`` = ``<metric>_<i>``: item i (from 1) of a list-valued metric."""
    name, _, index = key.rpartition("_")
    values = []
    for r in g.done:
        listed = r.metrics.get(name)
        ok = index.isdigit() and isinstance(listed, list) and 0 < int(index) <= len(listed)
        values.append(number(listed[int(index) - 1]) if ok else None)
    s = summarize(values)
    inside = s.contains(original)
    verdict = f"n={s.n}: no interval" if inside is None else ("inside" if inside else "outside")
    if s.n and s.sd == 0:
        verdict = "equal" if abs(s.mean - original) < 5e-5 else verdict  # deterministic (PCA)
    return [label, key, s.n, s.mean, s.half_width, original, verdict, None, None, "f4"]


def answer_rows(ctx: Context) -> list[list]:
    """[job, metric, n, mean, ±, original, inside?, ratio, s to 98%, kind] per headline group."""
    rows = []
    for label, g, job in headline_groups(ctx):
        original, source = original_figure(job.name, ACCURACY[0])
        row = _row(label, g, *ACCURACY[:2], original)
        if original is not None and source != job.name:  # an improved job: the gain over it
            mean = row[3]
            row[6] = "" if mean is None else f"{100 * (mean - original):+.2f} pp over {source}'s"
        rows.append(row)
    for name, job in registry().items():
        if job.family == "classifier" and job.cells is None:
            continue
        if job.family == "classifier":  # a batch of classifier cells without dev: the sweep
            metric, kind = SWEEP[:2]
            if not job.original_figures:
                continue  # its chosen cell is in the classifier rows
        else:
            metric, kind = RECONSTRUCTION[:2]
        for cell, g in pick_cell_groups(ctx.runs, name).items():
            label = f"{name}/{cell}" if cell else name
            if g.summary(metric).n == 0:
                # No reconstruction MSE (PCA): the original's own figures, ``<list>_<i>`` read
                # as item i (from 1) of a list metric.
                for key, value in job.original_figures.items():
                    rows.append(_listed_row(label, g, key, value))
                continue
            shown, shown_kind = metric, kind
            if job.family == "reconstruction" and original_figure(name, "test_mse", cell)[0]:
                shown, shown_kind = "test_mse", "f4"  # compared in the original's units
            original = original_figure(name, shown, cell)[0]
            rows.append(_row(label, g, shown, shown_kind, original))
    return rows


def headline(ctx: Context, environment: str, bench_rows: list[list]) -> Section:
    """The answer first: one row per job (or cell), the benchmark verdicts, the environment."""
    s = Section(
        "answer",
        "Results at a glance",
        f"{environment} Each row: ours as the mean over seeds ± the half-width of its 95% "
        "interval (Student t; n = 1 gives none), the original project's printed figure and "
        "whether it lies inside our interval. Choices (epoch, grid cell) are made on the dev "
        "split; the test set is read once per run.",
    )
    rows = answer_rows(ctx)
    table_rows = []
    for job, metric, n, mean, hw, original, inside, ratio, to98, kind in rows:
        hw_kind = "±pct" if kind == "pct" else "±f4"
        table_rows.append(
            [job, metric, n, (mean, kind), (hw, hw_kind), (original, kind), inside, ratio, to98]
        )
    s.tables.append(
        Table(
            "Every job against the original projects",
            [
                ("job", "text"),
                ("metric", "text"),
                ("n", "int"),
                ("ours (mean)", "cell"),
                ("95% CI", "cell"),
                ("original", "cell"),
                ("original inside our CI (or gain)", "text"),
                ("÷ PCA or ÷ noisy input", "f2"),
                (f"s to {float(SPRINT_TARGET):.0%} dev (median)", "t"),
            ],
            table_rows,
            note="Accuracies are fractions shown as percentages. test_mse_pixels: MSE in [0, 1] "
            "pixels; test_mse: in the original autoencoders' z-score units, as they printed it. "
            "÷ PCA: the autoencoder's MSE over PCA's at the same latent size; a denoiser's "
            "over its noisy input's. Seconds to 98% dev: from before the data is read, median "
            "over seeds, blank unless every seed reached it.",
        )
    )
    if bench_rows:
        s.tables.append(
            Table(
                "Benchmark targets (newest file)",
                [
                    ("benchmark", "text"),
                    ("ratio", "text"),
                    ("median", "f2"),
                    ("q1", "f2"),
                    ("q3", "f2"),
                    ("target", "f2"),
                    ("verdict", "text"),
                ],
                bench_rows,
                note="A target is met when q1 reaches it, missed when q3 is below it, and "
                "unstable when the quartiles straddle it (too noisy to tell).",
            )
        )
    if not any(r[2] for r in rows):
        s.notes.append("No finished runs: every row reads 'missing'. Run `nox -s suite` first.")
    return s


def summaries(ctx: Context) -> list[dict]:
    """Every group's every finite metric as a named record (``results.json``'s ``summaries``)."""
    out = []
    for name in sorted(registry()):
        for g in groups(ctx.runs, name):
            if not g.done:
                continue
            metrics = sorted(
                {
                    k
                    for r in g.done
                    for k, v in r.metrics.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
            fingerprints = sorted({r.fingerprint for r in g.done if r.fingerprint})
            for metric in metrics:
                s = summarize(g.values(metric))
                if s.n == 0:
                    continue
                out.append(
                    {
                        "job": g.job,
                        "cell": g.cell,
                        "profile": g.profile,
                        "metric": metric,
                        "n": s.n,
                        "mean": _finite(s.mean),
                        "sd": _finite(s.sd),
                        "ci_low": _finite(s.ci_low),
                        "ci_high": _finite(s.ci_high),
                        "min": _finite(s.min),
                        "max": _finite(s.max),
                        "seeds": sorted(r.seed for r in g.done if r.seed is not None),
                        "fingerprints": fingerprints,
                    }
                )
    return out


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def markdown_table(results: dict) -> str:
    """The first table of a report's ``results.json`` as a short Markdown table (for the README).

    Raises
    ------
    ValueError
        ``results`` has no answer section (not a schema-2 report).
    """
    from mnist_suite.report.document import fmt

    section = next((s for s in results.get("sections", []) if s.get("key") == "answer"), None)
    if section is None or not section.get("tables"):
        raise ValueError("no 'answer' section: not a report of schema version 2")
    lines = [
        "| job | metric | ours: mean ± 95% CI (n) | original | original inside our CI (or gain) "
        "| ÷ PCA or ÷ noisy input |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in section["tables"][0]["rows"]:
        kind = "pct" if "accuracy" in row["metric"] else "f4"
        ours = "—"
        if row["n"]:
            ours = fmt(row["ours_mean"], kind)
            if row["95pct_ci"] is not None:
                ours += " " + fmt(row["95pct_ci"], "±pct" if kind == "pct" else "±f4")
            ours += f" ({row['n']})"
        metric = row["metric"].split(" (")[0]
        lines.append(
            f"| `{row['job']}` | {metric} | {ours} | {fmt(row['original'], kind)} | "
            f"{row['original_inside_our_ci_or_gain'] or '—'} | "
            f"{fmt(row['over_pca_or_over_noisy_input'], 'f2')} |"
        )
    return "\n".join(lines) + "\n"
