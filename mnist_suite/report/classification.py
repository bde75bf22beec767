"""Classifiers over seeds: test accuracy with intervals against the original, time to target,
learning curves as bands, the best confusion matrix.

Which jobs are classifiers, what the original printed and which job each improves on come from the
job registry (``mnist_suite.jobs``). A batch classifier (the grid) appears through the cell chosen
on dev means; its test figure is read for that cell only.
"""

from __future__ import annotations

import math

import numpy as np

from mnist_suite.originals import RULE, Judgement, judge, original, original_figure
from mnist_suite.report import figures
from mnist_suite.report.collect import number
from mnist_suite.report.common import Context, missing_note, registry
from mnist_suite.report.document import Section, Table
from mnist_suite.report.figures import FigureWriter
from mnist_suite.report.original import ORIGINAL_CURVES, SOURCE
from mnist_suite.report.replicates import Group, pick_cell_groups, pick_group
from mnist_suite.stats import median_spread
from mnist_suite.summary import mean_ci
from mnist_suite.targets import TARGETS, target_key


def classifier_jobs() -> list:
    return [j for j in registry().values() if j.family == "classifier"]


def chosen_cell(cells: dict[str, Group]) -> Group | None:
    """The cell with the highest mean dev accuracy over its finished seeds (test never read)."""
    best, best_dev = None, -math.inf
    for g in cells.values():
        dev = g.summary("dev_accuracy").mean
        if dev is not None and dev > best_dev:
            best, best_dev = g, dev
    return best


def headline_groups(ctx: Context) -> list[tuple[str, Group | None, object]]:
    """(row label, group, job) per classifier: single-cell jobs and dev-chosen batch cells.

    Batch jobs without a dev figure (the original's lr sweep) have their own section.
    """
    rows = []
    for job in classifier_jobs():
        if job.cells is None:
            rows.append((job.name, pick_group(ctx.runs, job.name), job))
            continue
        chosen = chosen_cell(pick_cell_groups(ctx.runs, job.name))
        if chosen is not None:
            rows.append((f"{job.name} (chosen on dev: {chosen.cell})", chosen, job))
    return rows


def original_verdict(job, g: Group | None, metric: str) -> Judgement | None:
    """Is the original's printed figure (one run) consistent with ours
    (:func:`mnist_suite.originals.judge`; faithful jobs only)? None without a figure or runs."""
    found = original(job.name, metric) if job is not None else None
    if found is None or found.job != job.name or g is None:
        return None
    return judge(found, g.summary(metric))


def classification(ctx: Context) -> Section:
    """Accuracy over seeds (ours vs the original), time to target, curves, the confusion matrix."""
    s = Section(
        "classification",
        "Classification",
        "Test accuracy of each classifier on the 10,000 MNIST test images over its seeds: mean, "
        "95% confidence interval of the mean (Student t), min, max and MLPerf's trimmed mean "
        "(best and worst of five or more runs dropped). Every choice (epoch, grid point) is made "
        "on the dev split; the test set is read once per run. Faithful jobs are checked "
        f"against the original's printed figure (source: {SOURCE}), one unseeded run. {RULE} "
        "Improved jobs show the difference from the original experiment they improve on.",
    )
    entries = headline_groups(ctx)
    rows, groups = [], []
    for label, g, job in entries:
        test = g.summary("test_accuracy") if g else None
        seed, original_job = original_figure(job.name, "test_accuracy")
        judged = original_verdict(job, g, "test_accuracy")
        rows.append(
            [
                label,
                g.profile if g else "",
                g.count_text() if g else "missing",
                g.summary("dev_accuracy").mean if g else None,
                test.mean if test else None,
                test.half_width if test else None,
                test.min if test else None,
                test.max if test else None,
                test.trimmed_mean if test else None,
                median_spread(g.values("wall_seconds"))[0] if g else None,
                seed,
                original_job,
                judged.p if judged else None,
                judged.text if judged else "",
                None if seed is None or not test or test.mean is None else test.mean - seed,
            ]
        )
        groups.append((job.name, g))
    tests = [r[4] if r[4] is not None else -1.0 for r in rows]
    marked = {int(np.argmax(tests))} if tests and max(tests) >= 0 else set()
    s.tables.append(
        Table(
            "Test accuracy over seeds, ours vs the original",
            [
                ("job", "text"),
                ("profile", "text"),
                ("seeds done", "text"),
                ("dev acc (mean)", "pct"),
                ("test acc (mean)", "pct"),
                ("95% CI", "±pct"),
                ("min", "pct"),
                ("max", "pct"),
                ("trimmed mean (n ≥ 5)", "pct"),
                ("wall (s, median)", "f2"),
                ("original's figure", "pct"),
                ("original experiment", "text"),
                ("p", "p"),
                ("original vs ours (one-run interval)", "text"),
                ("Δ mean vs original", "pp"),
            ],
            rows,
            marked,
            note="Bold row: the best mean test accuracy. 95% CI: half-width of the Student-t "
            "interval of the mean over seeds; one seed gives no interval. '—': not measured by "
            "that job or no finished run. Jobs without a dev split keep the original data (see the "
            "time-to-target table).",
        )
    )
    absent = [name for name, g in groups if g is None]
    if absent:
        s.notes.append(missing_note(absent, "their rows read 'missing'"))
    s.tables.append(time_to_target_table(entries))
    for name, g in groups:
        if g is not None:
            ref = _learning_curves(ctx.writer, name, g)
            if ref:
                s.figures.append(ref)
    if (ref := _accuracy_spread(ctx.writer, entries)) is not None:
        s.figures.append(ref)
    confusions = [
        (g, r)
        for _, g in groups
        if g is not None
        for r in g.done[:1]
        if r.array("confusion", "matrix") is not None and r.metric("test_accuracy") is not None
    ]
    if confusions:
        g, run = max(confusions, key=lambda gr: gr[0].summary("test_accuracy").mean or 0.0)
        s.figures.append(_confusion(ctx.writer, g, run))
    else:
        s.notes.append("No finished classifier saved a confusion matrix: no confusion figure.")
    return s


def time_to_target_table(entries: list[tuple[str, Group | None, object]]) -> Table:
    """Median and range over seeds of the seconds to each dev-accuracy target."""
    rows, bold, notes = [], set(), set()
    best: dict[str, tuple[float, int]] = {}
    for i, (label, g, job) in enumerate(entries):
        row = [label, g.count_text() if g else "missing"]
        evaluations = [number(v) for v in (g.nested("time_to_target", "evaluations") if g else [])]
        no_dev = g is not None and g.done and not any(evaluations)
        for target in map(target_key, TARGETS):
            if g is None or not g.done:
                row += [None, "", ""]
                continue
            if no_dev:
                row += [None, "", "no dev split"]
                notes.add(f"{label}: {job.dev_note or 'no dev split'}.")
                continue
            seconds = [number(v) for v in g.nested("time_to_target", "seconds", target)]
            reached = [v for v in seconds if v is not None]
            # Not reached counts as infinitely slow: the median is a time only if most reached.
            median = float(np.median([math.inf if v is None else v for v in seconds]))
            median = None if math.isinf(median) else median
            spread = f"{min(reached):.3g}–{max(reached):.3g}" if reached else ""
            status = f"{len(reached)}/{len(seconds)}" if reached else "not reached"
            row += [median, spread, status]
            if median is not None and (target not in best or median < best[target][0]):
                best[target] = (median, i)
        evals = median_spread(g.values("eval_seconds")) if g else (None,) * 3
        row += [evals[0]]
        rows.append(row)
    for k, target in enumerate(map(target_key, TARGETS)):
        if target in best:
            bold.add((best[target][1], 2 + 3 * k))
    columns = [("job", "text"), ("seeds done", "text")]
    for target in TARGETS:
        columns += [
            (f"to {target:.0%} dev (s, median)", "f2"),
            (f"to {target:.0%}: range (s)", "text"),
            (f"to {target:.0%}: reached", "text"),
        ]
    columns.append(("evaluation cost (s, median)", "f2"))
    return Table(
        "Time to target: seconds to the first evaluation at 97%, 98% and 99% dev accuracy",
        columns,
        rows,
        bold=bold,
        note="Wall seconds from before the data is read (the run's own clock, data loading and "
        "every evaluation included) to the first evaluation (at least one per epoch) whose dev "
        "accuracy reaches the target. Median over seeds, a seed that never reached the target "
        "counting as slowest; range over the seeds that reached it; 'reached' k/n seeds. Bold: "
        "the fastest job to each target. Evaluation cost: seconds the run spent evaluating "
        "(dev, test and the training set's figures), inside the clock. AlgoPerf's "
        "MNIST target is 97% within 60 s. " + " ".join(sorted(notes)),
    )


def _learning_curves(writer: FigureWriter, job: str, g: Group):
    from mnist_suite.report.common import POSITION_FIELDS, curve_kind

    run = g.done[0] if g.done else g.runs[0]
    kind = curve_kind(run)
    if kind is None:
        return None
    keys = sorted({k for r in run.rows(kind) for k in r if k not in POSITION_FIELDS})
    loss, acc = {}, {}
    for key in keys:
        curve = g.curve(kind, key)
        if curve is None:
            continue
        x, mean, band = curve
        if key.endswith("loss"):
            loss[key] = (x, mean, band)
        elif key.endswith("accuracy"):
            acc[key] = (x, 100 * mean, 100 * band)
    for key, points in ORIGINAL_CURVES.get(job, {}).items():
        if kind == "epoch" and points:
            x, y = zip(*points, strict=True)
            loss[f"{key} (original's printed values)"] = (np.asarray(x), np.asarray(y))
    panels = [(p, d) for p, d in (("loss (nats per sample)", loss), ("accuracy (%)", acc)) if d]
    if not panels:
        return None
    xlabel = {
        "epoch": "epoch",
        "step": "optimizer step (a mini-batch; one sample for per-sample SGD)",
        "eval": "training samples seen (per-sample SGD)",
    }[kind]
    n = len(g.done)
    final = g.summary("test_accuracy")
    ours = mean_ci(final.mean, final.half_width, "accuracy")
    takeaway = f"mean test accuracy {ours} over {n} seed{'s' * (n != 1)}"
    return figures.curves(
        writer,
        f"curves-{job}",
        f"Learning curves: {job} ({g.profile}, mean of {n} seed{'s' * (n != 1)})",
        xlabel,
        panels,
        caption=f"{job}: lines are the mean over seeds {g.done_seeds}, shaded bands the min–max "
        "range across them.",
        alt=f"Learning curves of {job} (loss and accuracy against {xlabel}): {takeaway}; "
        "the shaded bands show the spread across seeds.",
    )


def _accuracy_spread(writer: FigureWriter, entries) -> object | None:
    """Mean test accuracy per classifier with its 95% interval as whiskers."""
    labels, means, errors = [], [], []
    for label, g, _ in entries:
        s = g.summary("test_accuracy") if g else None
        if s is None or s.mean is None:
            continue
        labels.append(f"{label} (n={s.n})")
        means.append(100 * s.mean)
        lo = s.ci_low if s.ci_low is not None else s.mean
        hi = s.ci_high if s.ci_high is not None else s.mean
        errors.append((100 * lo, 100 * hi))
    if not labels:
        return None
    best = labels[int(np.argmax(means))]
    return figures.intervals(
        writer,
        "accuracy-spread",
        "Test accuracy over seeds: mean and 95% interval",
        labels,
        means,
        errors,
        xlabel="test accuracy (%)",
        ylabel="classifier (seeds)",
        caption="Dots: mean over seeds; whiskers: the 95% Student-t interval of the mean "
        "(none for a single seed). The axis is zoomed to the values.",
        alt=f"Mean test accuracy with 95% intervals per classifier; {best} is the most "
        f"accurate at {max(means):.2f}%.",
    )


def _confusion(writer: FigureWriter, g: Group, run):
    matrix = np.asarray(run.array("confusion", "matrix"), dtype=float)
    acc = run.metric("test_accuracy")
    digits = [str(d) for d in range(matrix.shape[0])]
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    i, j = np.unravel_index(int(off.argmax()), off.shape)
    return figures.heatmap(
        writer,
        "confusion-best",
        f"Confusion matrix of the best classifier: {run.label}, seed {run.seed} ({acc:.2%} test)",
        matrix,
        digits,
        [str(d) for d in range(matrix.shape[1])],
        xlabel="predicted digit",
        ylabel="true digit",
        cbar_label="test images (count, log colour scale)",
        cell_format="{:.0f}",
        log_color=True,
        caption=f"Counts of the 10,000 test images for one seed ({run.seed}) of the job with "
        "the best mean; the diagonal is correct.",
        alt=f"Confusion matrix of {run.label}: nearly all counts on the diagonal; the most "
        f"frequent confusion is a true {i} predicted as {j} ({off[i, j]:.0f} images).",
    )
