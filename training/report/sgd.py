"""The TensorFlow SGD experiments: the seed's learning-rate sweep and the lr x batch x net grid."""

from __future__ import annotations

import numpy as np

from training.report import figures
from training.report.collect import RunRecord, number, pick_cells
from training.report.common import (
    Context,
    done_metric,
    history_series,
    missing_note,
    state_text,
)
from training.report.document import Section, Table
from training.report.seed import seed_figure


def _cell_lr(run: RunRecord) -> float | None:
    return number(run.config.get("lr"))


def _net(run: RunRecord) -> str:
    widths = run.config.get("widths")
    return "-".join(map(str, widths)) if isinstance(widths, list) else str(widths or "?")


def grid_best(ctx: Context) -> tuple[RunRecord | None, int | None, float | None]:
    """The sgd-grid cell chosen on dev: (run, its kept epoch, its dev accuracy).

    Only dev figures are compared; the test set never takes part in the choice.
    """
    best = (None, None, None)
    for run in pick_cells(ctx.runs, "sgd-grid").values():
        dev = done_metric(run, "dev_accuracy")
        if dev is not None and (best[2] is None or dev > best[2]):
            epoch = run.metric("best_epoch")
            best = (run, None if epoch is None else int(epoch), dev)
    return best


def sgd(ctx: Context) -> Section:
    """The seed's learning-rate sweep (table, figure) and the grid (table, heatmaps)."""
    s = Section(
        "sgd",
        "TensorFlow SGD: learning-rate sweep and grid",
        "The seed's one-epoch learning-rate sweep (batch 32, sum-reduced loss, so the "
        "mean-gradient step is 32 × lr) and the lr × batch size × network grid it promised and "
        "never ran (mean-reduced loss, dev accuracy after every epoch; each point keeps its best "
        "dev epoch, the grid's point is chosen on dev and only its test accuracy is shown).",
    )
    _sweep(ctx, s)
    _grid(ctx, s)
    return s


def _sweep(ctx: Context, s: Section) -> None:
    cells = pick_cells(ctx.runs, "sgd-lr-sweep")
    if not cells:
        s.notes.append(missing_note(["sgd-lr-sweep"], "no sweep table or figure"))
        return
    rows, series = [], {}
    for cell, run in sorted(cells.items(), key=lambda kv: -(_cell_lr(kv[1]) or 0.0)):
        seed, _ = seed_figure("sgd-lr-sweep", "final_train_loss", cell)
        final = done_metric(run, "final_train_loss")
        stuck = run.metrics.get("stuck_at_chance")
        rows.append(
            [
                cell,
                _cell_lr(run),
                run.profile,
                state_text(run),
                final,
                done_metric(run, "final_batch_loss"),
                seed,
                None if final is None or seed is None else final - seed,
                {True: "yes", False: "no"}.get(stuck),
            ]
        )
        losses = run.array("batch_losses", "loss")
        if losses is None:  # fall back to per-batch history rows
            losses = history_series(run.rows("batch"), "loss")
            losses = losses[1] if losses else None
        if losses is not None and len(losses):
            label = f"lr {_cell_lr(run):g}" + ("" if run.state == "done" else f" ({run.state})")
            series[label] = (np.arange(1, len(losses) + 1), np.asarray(losses, float))
    s.tables.append(
        Table(
            "Learning-rate sweep (1 epoch, batch 32, sum reduction)",
            [
                ("cell", "text"),
                ("lr", "g"),
                ("profile", "text"),
                ("state", "text"),
                ("train loss after epoch (nats)", "f4"),
                ("last batch loss (nats)", "f4"),
                ("seed's loss", "f4"),
                ("Δ vs seed", "f4"),
                ("stuck at ln 10", "text"),
            ],
            rows,
            note="Train loss: mean over the full training set after the epoch, as the seed "
            f"printed it; ln 10 = {np.log(10):.4f} is chance level.",
        )
    )
    if series:
        batch = int(number(next(iter(cells.values())).config.get("batch_size")) or 32)
        # The seed's view: the first 20,000 samples; beside it the whole epoch.
        first = 20_000 // batch
        seed_view = {k: (x[:first], y[:first]) for k, (x, y) in series.items()}
        s.figures.append(
            figures.curves(
                ctx.writer,
                "sgd-lr-sweep",
                "Learning-rate sweep: mini-batch loss vs iteration (the seed's figure)",
                f"iteration (mini-batch of {batch})",
                [
                    ("mini-batch mean loss (nats), first 20,000 samples", seed_view),
                    ("mini-batch mean loss (nats), whole run", series),
                ],
                ylim=[(0.0, 10.0), (0.0, 10.0)],
                caption="Left as the seed drew it (20,000 samples, loss clipped at 10); right "
                "the whole run. A diverged run's curve stops where its loss stopped being finite.",
            )
        )
    else:
        s.notes.append("No sweep cell kept its batch losses: no sweep figure.")


def _grid(ctx: Context, s: Section) -> None:
    cells = pick_cells(ctx.runs, "sgd-grid")
    if not cells:
        s.notes.append(missing_note(["sgd-grid"], "no grid table or heatmap"))
        return
    runs = sorted(
        cells.values(),
        key=lambda r: (_net(r), number(r.config.get("batch_size")) or 0, -(_cell_lr(r) or 0)),
    )
    per_epoch = {}
    for run in runs:
        series = history_series(run.rows("epoch"), "dev_accuracy")
        per_epoch[run.cell] = (
            dict(zip(series[0].astype(int), series[1], strict=True)) if series else {}
        )
    epochs = sorted({e for accs in per_epoch.values() for e in accs})
    best_run, best_epoch, best_acc = grid_best(ctx)
    rows, marked = [], set()
    for i, run in enumerate(runs):
        accs = per_epoch[run.cell] if run.state == "done" else {}
        best_e = max(accs, key=accs.get) if accs else None
        rows.append(
            [
                _net(run),
                run.config.get("batch_size"),
                _cell_lr(run),
                state_text(run),
                *(accs.get(e) for e in epochs),
                best_e,
                accs.get(best_e),
                done_metric(run, "test_accuracy") if run is best_run else None,
                run.metric("wall_seconds"),
            ]
        )
        if run is best_run:
            marked.add(i)
    s.tables.append(
        Table(
            "Grid: dev accuracy after each epoch",
            [
                ("net", "text"),
                ("batch", "int"),
                ("lr", "g"),
                ("state", "text"),
                *((f"ep {e}", "pct") for e in epochs),
                ("best epoch", "int"),
                ("best dev acc", "pct"),
                ("test acc (chosen point only)", "pct"),
                ("wall (s)", "f2"),
            ],
            rows,
            marked,
            note=(
                f"Bold: the point chosen on dev ({best_run.cell}, epoch {best_epoch}, "
                f"{best_acc:.2%} dev); the test set is read for that point only."
                if best_run is not None
                else "No grid point finished."
            ),
        )
    )
    for net in sorted({_net(r) for r in runs}):
        _grid_heatmap(ctx, s, net, [r for r in runs if _net(r) == net], per_epoch, best_run)


def _grid_heatmap(ctx, s, net, runs, per_epoch, best_run) -> None:
    lrs = sorted({_cell_lr(r) for r in runs if _cell_lr(r) is not None}, reverse=True)
    batches = sorted({int(b) for r in runs if (b := number(r.config.get("batch_size")))})
    if not lrs or not batches:
        return
    matrix = np.full((len(lrs), len(batches)), np.nan)
    texts = [["missing"] * len(batches) for _ in lrs]
    mark = None
    for run in runs:
        lr, batch = _cell_lr(run), number(run.config.get("batch_size"))
        if lr not in lrs or batch is None:
            continue
        i, j = lrs.index(lr), batches.index(int(batch))
        accs = per_epoch.get(run.cell, {})
        if run.state == "done" and accs:
            e = max(accs, key=accs.get)
            matrix[i, j] = 100 * accs[e]
            texts[i][j] = f"{100 * accs[e]:.2f}\nep {e}"
        else:
            texts[i][j] = state_text(run).split(":")[0].replace(" @ step ", "\n@")
        if run is best_run:
            mark = (i, j)
    s.figures.append(
        figures.heatmap(
            ctx.writer,
            f"sgd-grid-{net}",
            f"SGD grid, net 784-{net}-10: best-epoch dev accuracy",
            matrix,
            [f"{lr:g}" for lr in lrs],
            [str(b) for b in batches],
            xlabel="batch size (samples)",
            ylabel="learning rate (mean-loss step)",
            cbar_label="dev accuracy at the best epoch (%)",
            texts=texts,
            mark=mark,
            caption="Each cell: the highest per-epoch dev accuracy and its epoch; grey cells "
            "diverged, failed or have no run. Red outline: the point chosen on dev.",
        )
    )
