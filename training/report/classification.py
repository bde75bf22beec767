"""Classifiers: test accuracy against the seed, learning curves, the best confusion matrix."""

from __future__ import annotations

import numpy as np

from training.report import figures
from training.report.collect import RunRecord, number, pick, pick_cells
from training.report.common import (
    Context,
    curve_kind,
    done_metric,
    history_series,
    key_config,
    missing_note,
    state_text,
)
from training.report.document import Section, Table
from training.report.figures import FigureWriter
from training.report.seed import SEED_CURVES, SOURCE, seed_figure
from training.report.sgd import grid_best

CLASSIFIERS = ("softmax-seed", "softmax", "mlp-seed", "mlp-fast", "mlp", "sgd-seed")


def classification(ctx: Context) -> Section:
    """Accuracy table (ours vs the seed), learning curves, the best confusion matrix."""
    s = Section(
        "classification",
        "Classification",
        "Accuracy of each classifier on the 10,000 MNIST test images, with the seed's reported "
        f"figure (source: {SOURCE}) and the difference in percentage points. Improved jobs are "
        "compared with the seed experiment they improve on.",
    )
    rows, runs = [], []
    for job in CLASSIFIERS:
        run = pick(ctx.runs, job)
        test = done_metric(run, "test_accuracy")
        seed, seed_job = seed_figure(job, "test_accuracy")
        rows.append(
            [
                job,
                key_config(run) if run else "",
                run.profile if run else "",
                state_text(run),
                done_metric(run, "train_accuracy"),
                done_metric(run, "dev_accuracy"),
                test,
                done_metric(run, "wall_seconds"),
                seed,
                seed_job,
                None if test is None or seed is None else test - seed,
            ]
        )
        runs.append(run)
    grid_run, grid_epoch, grid_dev = grid_best(ctx)
    if grid_run is not None:
        seed, seed_job = seed_figure("sgd-grid", "test_accuracy")
        config = key_config(grid_run) + (f", best epoch={grid_epoch}" if grid_epoch else "")
        at_best = next((r for r in grid_run.rows("epoch") if r.get("step") == grid_epoch), {})
        grid_test = done_metric(grid_run, "test_accuracy")
        rows.append(
            [
                f"sgd-grid (chosen on dev: {grid_run.cell})",
                config,
                grid_run.profile,
                state_text(grid_run),
                number(at_best.get("train_accuracy")),
                grid_dev,
                grid_test,
                grid_run.metric("wall_seconds"),
                seed,
                seed_job,
                None if seed is None or grid_test is None else grid_test - seed,
            ]
        )
        runs.append(grid_run)
    tests = [r[6] if r[6] is not None else -1.0 for r in rows]
    marked = {int(np.argmax(tests))} if max(tests) >= 0 else set()
    s.tables.append(
        Table(
            "Test accuracy, ours vs the seed",
            [
                ("job", "text"),
                ("key config", "text"),
                ("profile", "text"),
                ("state", "text"),
                ("train acc", "pct"),
                ("dev acc", "pct"),
                ("test acc", "pct"),
                ("wall (s)", "f2"),
                ("seed's figure", "pct"),
                ("seed experiment", "text"),
                ("Δ vs seed", "pp"),
            ],
            rows,
            marked,
            note="Bold: the best test accuracy. '—': not measured by that job or run not done.",
        )
    )
    absent = [j for j, r in zip(CLASSIFIERS, runs, strict=False) if r is None]
    if absent:
        s.notes.append(missing_note(absent, "their rows read 'missing'"))
    if not pick_cells(ctx.runs, "sgd-grid"):
        s.notes.append(missing_note(["sgd-grid"], "its best point is not in the table"))

    for job, run in zip(CLASSIFIERS, runs, strict=False):
        if run is None:
            continue
        ref = _learning_curves(ctx.writer, job, run)
        if ref:
            s.figures.append(ref)
    best = [r for r in runs if r is not None and r.array("confusion", "matrix") is not None]
    best = [r for r in best if done_metric(r, "test_accuracy") is not None]
    if best:
        run = max(best, key=lambda r: r.metric("test_accuracy"))
        s.figures.append(_confusion(ctx.writer, run))
    else:
        s.notes.append("No finished classifier saved a confusion matrix: no confusion figure.")
    return s


def _learning_curves(writer: FigureWriter, job: str, run: RunRecord):
    kind = curve_kind(run)
    if kind is None:
        return None
    rows = run.rows(kind)
    keys = sorted({k for r in rows for k in r if k not in ("kind", "step", "time")})
    loss = {k: v for k in keys if k.endswith("loss") and (v := history_series(rows, k))}
    acc = {
        k: (x, 100 * y)
        for k in keys
        if k.endswith("accuracy") and (s := history_series(rows, k))
        for x, y in [s]
    }
    for key, points in SEED_CURVES.get(job, {}).items():
        if kind == "epoch" and points:
            x, y = zip(*points, strict=True)
            loss[f"{key} (seed's printed values)"] = (np.asarray(x), np.asarray(y))
    panels = [(p, d) for p, d in (("loss (nats per sample)", loss), ("accuracy (%)", acc)) if d]
    if not panels:
        return None
    xlabel = {
        "epoch": "epoch",
        "step": "training iteration (mini-batch)",
        "eval": "training samples seen (per-sample SGD)",
    }[kind]
    return figures.curves(
        writer,
        f"curves-{job}",
        f"Learning curves: {job} ({run.profile}, {state_text(run)})",
        xlabel,
        panels,
        caption=f"{job}: history of run {run.path.name}.",
    )


def _confusion(writer: FigureWriter, run: RunRecord):
    matrix = np.asarray(run.array("confusion", "matrix"), dtype=float)
    acc = run.metric("test_accuracy")
    digits = [str(d) for d in range(matrix.shape[0])]
    return figures.heatmap(
        writer,
        "confusion-best",
        f"Confusion matrix of the best classifier: {run.label} ({acc:.2%} test)",
        matrix,
        digits,
        [str(d) for d in range(matrix.shape[1])],
        xlabel="predicted digit",
        ylabel="true digit",
        cbar_label="test images (count, log colour scale)",
        cell_format="{:.0f}",
        log_color=True,
        caption="Counts of the 10,000 test images; the diagonal is correct.",
    )
