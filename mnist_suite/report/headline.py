"""The report's first screen: every job's answer in one table, the benchmark verdicts, and where
the figures came from; and the same figures as named records for ``results.json``.

A row is a group of runs over seeds (:mod:`mnist_suite.report.replicates`): its profile and any
non-default config, ours as mean, 95% interval and n, the original project's printed figure
beside it and whether it is consistent with ours (:mod:`mnist_suite.originals`: the prediction
interval for one run), and for classifiers the median seconds to 98% dev accuracy.
"""

from __future__ import annotations

import dataclasses
import math

from mnist_suite import summary
from mnist_suite.originals import original_figure, verdict_text
from mnist_suite.report.classification import headline_groups
from mnist_suite.report.collect import number
from mnist_suite.report.common import Context, non_default, registry
from mnist_suite.report.document import Section, Table
from mnist_suite.report.reconstruction import pca_denominator
from mnist_suite.report.replicates import Group, pick_cell_groups
from mnist_suite.stats import summarize
from mnist_suite.summary import SPRINT_TARGET, time_to_target

# The one figure each kind of job is judged by: (metric, how to format it, higher is better).
ACCURACY = ("test_accuracy", "pct", True)
RECONSTRUCTION = ("test_mse_pixels", "f4", False)
SWEEP = ("final_train_loss", "f4", False)
# A ratio over an MSE below this (pixels in [0, 1]: under 1% RMS) says nothing: PCA at k = 512
# reconstructs almost exactly, and dividing by its ≈ 0 gives any number at all.
NEAR_ZERO_MSE = 1e-4


def runs_as(g: Group | None) -> str:
    """The profile of the group's runs and every config value that differs from the job's
    default for that profile (and cell): ``quick; lr=0.05``."""
    if g is None:
        return ""
    return "; ".join([g.profile, *non_default(g.job, g.cell, g.profile, g.config)])


def _ratio(g: Group, numerator: str, denominator: str) -> float | None:
    """Mean of a ratio metric, unless the denominator's mean is near zero (no meaning)."""
    below = g.summary(denominator).mean
    if below is None or below < NEAR_ZERO_MSE:
        return None
    return g.summary(numerator).mean


def _row(label: str, g: Group | None, metric: str, kind: str, original: float | None) -> list:
    s = g.summary(metric) if g else None
    over_pca = over_noisy = None
    if g and metric in (RECONSTRUCTION[0], "test_mse"):
        over_pca = _ratio(g, "mse_vs_pca", pca_denominator(g))
        over_noisy = _ratio(g, "denoised_vs_noisy", "noisy_mse_pixels")
    return [
        label,
        runs_as(g),
        metric,
        s.n if s else 0,
        s.mean if s else None,
        s.half_width if s else None,
        original,
        verdict_text(original, s, metric) if g else "missing",
        over_pca,
        over_noisy,
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
    verdict = verdict_text(original, s, key)
    row = [label, runs_as(g), key, s.n, s.mean, s.half_width, original, verdict]
    return [*row, None, None, None, "f4"]


def answer_rows(ctx: Context) -> list[list]:
    """[job, runs as, metric, n, mean, ±, original, consistent?, ÷ PCA, ÷ noisy input,
    s to 98%, kind] per headline group."""
    rows = []
    for label, g, job in headline_groups(ctx):
        original, source = original_figure(job.name, ACCURACY[0])
        row = _row(label, g, *ACCURACY[:2], original)
        if original is not None and source != job.name:  # an improved job: the gain over it
            mean = row[4]
            gain = f"{100 * (mean - original):+.2f} pp over {source}'s" if mean is not None else ""
            if gain and row[1] != "full":  # a quick or overridden row vs a full original run
                gain += f" (ours: {row[1]}; theirs: its full run)"
            row[7] = gain
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
        f"{environment} Each row: the profile and any non-default config it ran with, ours as "
        "the mean over seeds ± the half-width of its 95% interval (Student t; n = 1 gives none), "
        "the original project's printed figure (one unseeded run) and whether it is consistent "
        "with ours: inside the 95% prediction interval for one run (mean ± t·sd·√(1 + 1/n)) or "
        "within the tolerance docs/original-projects.md documents (±1 pt accuracy, ±0.03 MSE). "
        "Choices (epoch, grid cell) are made on the dev split; the test set is read once per run.",
    )
    rows = answer_rows(ctx)
    table_rows = []
    for job, runs, metric, n, mean, hw, original, verdict, pca, noisy, to98, kind in rows:
        hw_kind = "±pct" if kind == "pct" else "±f4"
        ours = [(mean, kind), (hw, hw_kind), (original, kind)]
        table_rows.append([job, runs, metric, n, *ours, verdict, pca, noisy, to98])
    s.tables.append(
        Table(
            "Every job against the original projects",
            [
                ("job", "text"),
                ("runs (profile; config)", "text"),
                ("metric", "text"),
                ("n", "int"),
                ("ours (mean)", "cell"),
                ("95% CI", "cell"),
                ("original", "cell"),
                ("original vs ours (or gain)", "text"),
                ("÷ PCA", "f2"),
                ("÷ noisy input", "f2"),
                (f"s to {float(SPRINT_TARGET):.0%} dev (median)", "t"),
            ],
            table_rows,
            note="Accuracies are fractions shown as percentages. test_mse_pixels: MSE in [0, 1] "
            "pixels; test_mse: in the original autoencoders' z-score units, as they printed it. "
            "÷ PCA: the autoencoder's MSE over PCA's at the same latent size fed the same input "
            "(a denoiser's noisy test images); ÷ noisy input: a "
            "denoiser's over its noisy input's; blank where the denominator is near zero (below "
            f"{NEAR_ZERO_MSE:g}), where a ratio means nothing. Seconds to 98% dev: from before "
            "the data is read, median "
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
    """Every group's (one per config) every numeric metric as a named record
    (``results.json``'s ``summaries``): :func:`mnist_suite.summary.summaries`' rows."""
    jobs = set(registry())
    return summary.summaries(
        [r for r in ctx.runs if r.job in jobs], by=summary.BY_CONFIG, metrics=summary.every_number
    )


def _answer_row(row: dict, results: dict) -> dict:
    """One answer row of a ``results.json`` of schema 2 or 3 in schema 3's words: a schema-2
    row's "inside/outside our CI" is judged again by the prediction interval (its n, mean and
    95% half-width give the sd), its shared ratio column split and checked for a near-zero
    denominator against the file's summaries."""
    if "original_vs_ours_or_gain" in row:
        return row
    from scipy import stats

    label = str(row["job"])
    job = label.split(" ")[0]
    job, _, cell = job.partition("/")
    chosen = label.partition("(chosen on dev: ")[2].rstrip(")")
    cell = cell or chosen
    found = {
        str(s.get("metric")): s
        for s in results.get("summaries") or []
        if isinstance(s, dict) and s.get("job") == job and (s.get("cell") or "") == cell
    }
    described = set()
    for run in results.get("runs") or []:
        if isinstance(run, dict) and run.get("job") == job and (run.get("cell") or "") == cell:
            config = run.get("config") if isinstance(run.get("config"), dict) else {}
            profile = str(run.get("profile"))
            described.add("; ".join([profile, *non_default(job, cell, profile, config)]))
    verdict = row.get("original_inside_our_ci_or_gain") or ""
    metric = str(row["metric"]).split(" (")[0]
    n, mean, hw = row.get("n") or 0, row.get("ours_mean"), row.get("95pct_ci")
    if verdict in ("inside", "outside") and n >= 2 and hw is not None:
        sd = hw * math.sqrt(n) / float(stats.t.ppf(0.975, n - 1))
        s = summarize([])  # only the shape: n, mean and sd are the row's
        s = dataclasses.replace(s, n=n, mean=mean, sd=sd)
        verdict = verdict_text(row["original"], s, metric)
    elif verdict == "equal":
        verdict = "consistent"
    ratio = row.get("over_pca_or_over_noisy_input")
    noisy = "denois" in label
    below = (found.get("noisy_mse_pixels" if noisy else "pca_test_mse_pixels") or {}).get("mean")
    if not isinstance(below, int | float) or below < NEAR_ZERO_MSE:
        ratio = None
    return {
        "job": label,
        "runs_profile_config": " / ".join(sorted(described)),
        "metric": row["metric"],
        "n": n,
        "ours_mean": mean,
        "95pct_ci": hw,
        "original": row["original"],
        "original_vs_ours_or_gain": verdict,
        "over_pca": None if noisy else ratio,
        "over_noisy_input": ratio if noisy else None,
    }


def _blank(ratio: float | None) -> str:
    """A ratio cell of the README's table: empty where there is none (most rows), so the
    README's word count goes to words."""
    from mnist_suite.report.document import fmt

    return "" if ratio is None else fmt(ratio, "f2")


def markdown_table(results: dict) -> str:
    """The first table of a report's ``results.json`` (schema 2 or 3) as a short Markdown table
    (for the README).

    Raises
    ------
    ValueError
        ``results`` has no answer section (not a report of schema version 2 or 3).
    """
    from mnist_suite.compare import markdown
    from mnist_suite.report.document import fmt

    section = next((s for s in results.get("sections", []) if s.get("key") == "answer"), None)
    if section is None or not section.get("tables"):
        raise ValueError("no 'answer' section: not a report of schema version 2 or 3")
    rows = [_answer_row(raw, results) for raw in section["tables"][0]["rows"]]
    # One profile and config for every row is said once, under the table; else per row.
    shared = {r["runs_profile_config"] for r in rows}
    per_row = len(shared) > 1
    lines = [
        "| job |" + (" runs |" if per_row else "") + " metric | ours: mean ± 95% CI (n) | "
        "original | original vs ours (or gain) | ÷ PCA | ÷ noisy input |",
        "|" + " --- |" * (8 if per_row else 7),
    ]
    for row in rows:
        kind = "pct" if "accuracy" in row["metric"] else "f4"
        ours = "—"
        if row["n"]:
            ours = fmt(row["ours_mean"], kind)
            if row["95pct_ci"] is not None:
                ours += " " + fmt(row["95pct_ci"], "±pct" if kind == "pct" else "±f4")
            ours += f" ({row['n']})"
        metric = row["metric"].split(" (")[0]
        runs = f" {markdown(row['runs_profile_config']) or '—'} |" if per_row else ""
        lines.append(
            f"| `{row['job']}` |{runs} {metric} | {ours} | "
            f"{'' if row['original'] is None else fmt(row['original'], kind)} | "
            f"{row['original_vs_ours_or_gain'] or ''} | "
            f"{_blank(row['over_pca'])} | {_blank(row['over_noisy_input'])} |"
        )
    runs = "" if per_row else f"All rows: {markdown(next(iter(shared)) or '?')} profile, "
    runs += "" if per_row else "default config. "
    note = (
        f"\n{runs}Consistent: the original's single run falls in our 95% prediction interval "
        "or its documented tolerance.\n"
    )
    return "\n".join(lines) + "\n" + note
