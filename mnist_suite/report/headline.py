"""The report's first screen: every job's answer in one table, the benchmark verdicts, and where
the figures came from; and the same figures as named records for ``results.json``.

A row is a group of runs over seeds (:mod:`mnist_suite.report.replicates`): its profile and any
non-default config, ours as mean, 95% interval and n, the original project's printed figure
beside it, its predictive p-value against ours and the verdict (:mod:`mnist_suite.originals`),
and for classifiers the median seconds to 98% dev accuracy.
"""

from __future__ import annotations

import dataclasses
import math

from mnist_suite import summary, verdicts
from mnist_suite.meanings import meaning
from mnist_suite.originals import RULE, SOURCE, Judgement, Original, judge, original
from mnist_suite.report import benchmarks
from mnist_suite.report.classification import headline_groups
from mnist_suite.report.collect import number
from mnist_suite.report.common import Context, non_default, registry
from mnist_suite.report.document import Section, Table
from mnist_suite.report.reconstruction import pca_denominator
from mnist_suite.report.replicates import Group, pick_cell_groups
from mnist_suite.stats import summarize
from mnist_suite.summary import SPRINT_TARGET, time_to_target

# The one figure each kind of job is judged by.
ACCURACY, RECONSTRUCTION, SWEEP = "test_accuracy", "test_mse_pixels", "final_train_loss"
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


def _kind(metric: str) -> str:
    """How the report prints ``metric``'s values: in percent, or to four figures."""
    return "pct" if meaning(metric).percent else "f4"


def _row(label: str, g: Group | None, metric: str, found: Original | None) -> list:
    s = g.summary(metric) if g else None
    over_pca = over_noisy = None
    if g and metric in (RECONSTRUCTION, "test_mse"):
        over_pca = _ratio(g, "mse_vs_pca", pca_denominator(g))
        over_noisy = _ratio(g, "denoised_vs_noisy", "noisy_mse_pixels")
    judged = judge(found, s) if found and s else None
    return [
        label,
        runs_as(g),
        metric,
        s.n if s else 0,
        s.mean if s else None,
        s.half_width if s else None,
        found.value if found else None,
        judged.p if judged else None,
        judged.text if judged else "" if g else verdicts.MISSING,
        over_pca,
        over_noisy,
        time_to_target(g.done, SPRINT_TARGET) if g and metric == ACCURACY else None,
        _kind(metric),
    ]


def _listed_row(label: str, g: Group, key: str, found: Original) -> list:
    """A row for ``key`` = ``<metric>_<i>``: item i (from 1) of a list-valued metric."""
    name, _, index = key.rpartition("_")
    values = []
    for r in g.done:
        listed = r.metrics.get(name)
        ok = index.isdigit() and isinstance(listed, list) and 0 < int(index) <= len(listed)
        values.append(number(listed[int(index) - 1]) if ok else None)
    s = summarize(values)
    judged = judge(found, s)
    row = [label, runs_as(g), key, s.n, s.mean, s.half_width, found.value, judged.p, judged.text]
    return [*row, None, None, None, _kind(name)]


def answer_rows(ctx: Context) -> list[list]:
    """[job, runs as, metric, n, mean, ±, original, p, verdict, ÷ PCA, ÷ noisy input,
    s to 98%, kind] per headline group."""
    rows = []
    for label, g, job in headline_groups(ctx):
        found = original(job.name, ACCURACY)
        if found is not None and found.job != job.name:  # an improved job: the gain over it
            row = _row(label, g, ACCURACY, None)
            mean = row[4]
            row[6] = found.value
            gain = ""
            if mean is not None:
                gain = f"{100 * (mean - found.value):+.2f} pp over {found.job}'s"
            if gain and row[1] != "full":  # a quick or overridden row vs a full original run
                gain += f" (ours: {row[1]}; theirs: its full run)"
            row[8] = gain
        else:
            row = _row(label, g, ACCURACY, found)
        rows.append(row)
    for name, job in registry().items():
        if job.family not in ("classifier", "reconstruction"):
            continue  # no original to set beside it: the generic section shows it
        if job.family == "classifier" and job.cells is None:
            continue
        if job.family == "classifier":  # a batch of classifier cells without dev: the sweep
            metric = SWEEP
            if not job.original_figures:
                continue  # its chosen cell is in the classifier rows
        else:
            metric = RECONSTRUCTION
        for cell, g in pick_cell_groups(ctx.runs, name).items():
            label = f"{name}/{cell}" if cell else name
            if g.summary(metric).n == 0:
                # No reconstruction MSE (PCA): the original's own figures, ``<list>_<i>`` read
                # as item i (from 1) of a list metric.
                for key, text in job.original_figures.items():
                    rows.append(_listed_row(label, g, key, Original.parse(text, name)))
                continue
            shown = metric
            if job.family == "reconstruction" and original(name, "test_mse", cell):
                shown = "test_mse"  # compared in the original's units
            rows.append(_row(label, g, shown, original(name, shown, cell)))
    return rows


def headline(ctx: Context, environment: str, bench_rows: list[list]) -> Section:
    """The answer first: one row per job (or cell), the benchmark verdicts, the environment."""
    s = Section(
        "answer",
        "Results at a glance",
        f"{environment} Each row: the profile and any non-default config it ran with, ours as "
        "the mean over seeds ± the half-width of its 95% interval (Student t; n = 1 gives none), "
        f"the original project's printed figure (one unseeded run; {SOURCE}), p and the verdict. "
        f"{RULE} "
        "Choices (epoch, grid cell) are made on the dev split; the test set is read once per run.",
    )
    rows = answer_rows(ctx)
    table_rows = []
    for job, runs, metric, n, mean, hw, figure, p, verdict, pca, noisy, to98, kind in rows:
        hw_kind = "±pct" if kind == "pct" else "±f4"
        ours = [(mean, kind), (hw, hw_kind), (figure, kind)]
        table_rows.append([job, runs, metric, n, *ours, p, verdict, pca, noisy, to98])
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
                ("p", "p"),
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
        where = benchmarks.measured_on(benchmarks.newest(ctx))
        s.tables.append(
            Table(
                f"Benchmark targets (newest file, {where})",
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
    (``results.json``'s ``summaries``): :func:`mnist_suite.summary.summaries`' rows, of every
    job's runs (a job unknown here, a plugin not installed, included)."""
    return summary.summaries(ctx.runs, by=summary.BY_CONFIG, metrics=summary.every_number)


def _label_job_cell(label: str) -> tuple[str, str]:
    """(job, cell) of an answer row's label: ``ae-original/wide``, ``sgd-grid (chosen on dev:
    net32-b32-lr0.1)``."""
    job, _, cell = label.split(" ")[0].partition("/")
    return job, cell or label.partition("(chosen on dev: ")[2].rstrip(")")


def _schema_2_row(row: dict, results: dict) -> dict:
    """A schema-2 answer row in schema 3's fields: its shared ratio column split and checked for
    a near-zero denominator against the file's summaries; its "inside/outside our CI" is left
    for :func:`_judged_again`."""
    label = str(row["job"])
    job, cell = _label_job_cell(label)
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
    ratio = row.get("over_pca_or_over_noisy_input")
    noisy = "denois" in label
    below = (found.get("noisy_mse_pixels" if noisy else "pca_test_mse_pixels") or {}).get("mean")
    if not isinstance(below, int | float) or below < NEAR_ZERO_MSE:
        ratio = None
    return {
        "job": label,
        "runs_profile_config": " / ".join(sorted(described)),
        "metric": row["metric"],
        "n": row.get("n") or 0,
        "ours_mean": row.get("ours_mean"),
        "95pct_ci": row.get("95pct_ci"),
        "original": row["original"],
        "original_vs_ours_or_gain": row.get("original_inside_our_ci_or_gain") or "",
        "over_pca": None if noisy else ratio,
        "over_noisy_input": ratio if noisy else None,
    }


def _judged_again(row: dict) -> dict:
    """A row written without a p-value, judged by :func:`mnist_suite.originals.judge` from its
    n, mean and 95% half-width (which give the sd); a row comparing no original of its own (a
    gain, a missing job) as it stands."""
    from scipy import stats

    job, cell = _label_job_cell(str(row["job"]))
    found = original(job, str(row["metric"]).split(" (")[0], cell)
    n, mean, hw = row.get("n") or 0, row.get("ours_mean"), row.get("95pct_ci")
    if found is None or found.job != job or mean is None:
        return {**row, "p": None}
    sd = None
    if n >= 2 and hw is not None:
        sd = hw * math.sqrt(n) / float(stats.t.ppf(0.975, n - 1))
    s = dataclasses.replace(summarize([]), n=n, mean=mean, sd=sd)  # the row's n, mean and sd
    judged = judge(found, s)
    return {**row, "p": judged.p, "original_vs_ours_or_gain": judged.text}


def _answer_row(row: dict, results: dict) -> dict:
    """One answer row of a ``results.json`` of schema 2 or 3 in the newest words: a row written
    before the p-value judged again (:func:`_judged_again`)."""
    if "original_vs_ours_or_gain" not in row:
        row = _schema_2_row(row, results)
    return row if "p" in row else _judged_again(row)


def _verdict_cell(row: dict) -> str:
    """The README's verdict: the word and the p-value (``borderline (p=0.050)``); the report's
    full reason stays in the report. A gain or "n=1: no interval" as it stands."""
    text = row["original_vs_ours_or_gain"] or ""
    words = (verdicts.NOT_CONSISTENT, verdicts.BORDERLINE, verdicts.CONSISTENT)
    word = next((w for w in words if text.startswith(w)), None)
    p = row.get("p")
    if word is None or not isinstance(p, int | float):
        return text
    return Judgement(word, p).short


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
        metric = row["metric"].split(" (")[0]
        kind = _kind(metric)
        ours = "—"
        if row["n"]:
            ours = fmt(row["ours_mean"], kind)
            if row["95pct_ci"] is not None:
                ours += " " + fmt(row["95pct_ci"], "±pct" if kind == "pct" else "±f4")
            ours += f" ({row['n']})"
        runs = f" {markdown(row['runs_profile_config']) or '—'} |" if per_row else ""
        lines.append(
            f"| `{row['job']}` |{runs} {metric} | {ours} | "
            f"{'' if row['original'] is None else fmt(row['original'], kind)} | "
            f"{_verdict_cell(row)} | "
            f"{_blank(row['over_pca'])} | {_blank(row['over_noisy_input'])} |"
        )
    runs = "" if per_row else f"All rows: {markdown(next(iter(shared)) or '?')} profile, "
    runs += "" if per_row else "default config. "
    rule = f"Predictive p: {verdicts.CONSISTENT} ≥ {verdicts.CONSISTENT_P}, "
    rule += f"{verdicts.BORDERLINE} ≥ {verdicts.BORDERLINE_P}."
    note = f"\n{runs}{rule}\n"
    return "\n".join(lines) + "\n" + note
