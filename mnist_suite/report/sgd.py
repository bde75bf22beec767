"""The TensorFlow SGD experiments over seeds: the original's learning-rate sweep and the grid.

The grid's point is chosen on mean dev accuracy over seeds; only that point's test accuracy is
shown. Each cell of the heatmaps is a dev mean with its interval.
"""

from __future__ import annotations

import numpy as np

from mnist_suite.originals import RULE, judge, original
from mnist_suite.report import figures
from mnist_suite.report.collect import number
from mnist_suite.report.common import Context, missing_note, state_text
from mnist_suite.report.document import Section, Table
from mnist_suite.report.replicates import Group, pick_cell_groups
from mnist_suite.stats import summarize
from mnist_suite.summary import mean_ci


def _lr(g: Group) -> float | None:
    return number(g.config.get("lr"))


def _batch(g: Group) -> int:
    return int(number(g.config.get("batch_size")) or 0)


def _net(g: Group) -> str:
    widths = g.config.get("widths")
    return "-".join(map(str, widths)) if isinstance(widths, list) else str(widths or "?")


def _state(g: Group) -> str:
    """'done' when every seed finished; else the first unfinished run's state and the count."""
    if len(g.done) == len(g.runs):
        return "done"
    odd = next(r for r in g.runs if r.state != "done")
    return state_text(odd) if len(g.runs) == 1 else f"{g.count_text()}; {state_text(odd)}"


def sgd(ctx: Context) -> Section:
    """The original learning-rate sweep (table, figure) and the grid (table, heatmaps, scatter)."""
    s = Section(
        "sgd",
        "TensorFlow SGD: learning-rate sweep and grid",
        "The original's one-epoch learning-rate sweep (batch 32, sum-reduced loss, so the "
        "mean-gradient step is 32 × lr; all 60,000 training images, as the original) and the "
        "lr × batch size × network grid it promised and never ran (mean-reduced loss, 10 epochs "
        "on the training set minus the dev split). Each grid run keeps its best dev epoch; the "
        "grid's point is chosen on the mean dev accuracy over seeds, and only that point's test "
        "accuracy is shown.",
    )
    _sweep(ctx, s)
    _grid(ctx, s)
    return s


def _sweep(ctx: Context, s: Section) -> None:
    cells = pick_cell_groups(ctx.runs, "sgd-lr-sweep")
    if not cells:
        s.notes.append(missing_note(["sgd-lr-sweep"], "no sweep table or figure"))
        return
    rows, series = [], {}
    for cell, g in sorted(cells.items(), key=lambda kv: -(_lr(kv[1]) or 0.0)):
        found = original("sgd-lr-sweep", "final_train_loss", cell)
        seed = found.value if found else None
        final = g.summary("final_train_loss")
        stuck = [r.metrics.get("stuck_at_chance") for r in g.done]
        diverged = sum(r.state == "diverged" for r in g.runs)
        judged = judge(found, final) if found else None
        rows.append(
            [
                cell,
                _lr(g),
                g.profile,
                g.count_text(),
                final.mean,
                final.half_width,
                g.summary("final_batch_loss").mean,
                seed,
                judged.p if judged else None,
                judged.text if judged else "",
                None if final.mean is None or seed is None else final.mean - seed,
                f"{sum(bool(x) for x in stuck) + diverged} of {len(g.runs)}",
            ]
        )
        losses = [r.array("batch_losses", "loss") for r in g.runs]
        losses = [np.asarray(x, float) for x in losses if x is not None and len(x)]
        if losses:
            n = min(len(x) for x in losses)  # a diverged original's curve stops early
            stack = np.stack([x[:n] for x in losses])  # (seeds, steps)
            label = f"lr {_lr(g):g} ({len(losses)} seed{'s' * (len(losses) != 1)})"
            with np.errstate(invalid="ignore"):
                series[label] = (
                    np.arange(1, n + 1),
                    stack.mean(axis=0),
                    np.stack([stack.min(axis=0), stack.max(axis=0)]),
                )
    s.tables.append(
        Table(
            "Learning-rate sweep over seeds (1 epoch, batch 32, sum reduction)",
            [
                ("cell", "text"),
                ("lr", "g"),
                ("profile", "text"),
                ("seeds done", "text"),
                ("train loss after epoch (nats, mean)", "f4"),
                ("95% CI", "±f4"),
                ("last batch loss (nats, mean)", "f4"),
                ("original's loss", "f4"),
                ("p", "p"),
                ("original vs ours (one-run interval)", "text"),
                ("Δ mean vs original", "f4"),
                ("stuck at ln 10 or diverged", "text"),
            ],
            rows,
            note="Train loss: mean over the full training set after the epoch, as the original "
            f"printed it; ln 10 = {np.log(10):.4f} is chance level. Mean and interval over the "
            f"seeds that finished. {RULE}",
        )
    )
    if series:
        ends = {k: float(y[-1]) for k, (_, y, _) in series.items() if np.isfinite(y[-1])}
        lowest = min(ends, key=ends.get) if ends else None
        blown = [k for k, (_, y, _) in series.items() if not np.isfinite(y[-1]) or y[-1] > 2.0]
        takeaway = (f"{lowest} ends lowest ({ends[lowest]:.3f} nats)" if lowest else "") + (
            f"; {', '.join(blown)} diverged or stayed near chance" if blown else ""
        )
        batch = _batch(next(iter(cells.values()))) or 32
        first = 20_000 // batch  # the original's view: the first 20,000 samples
        seed_view = {k: (x[:first], y[:first], b[:, :first]) for k, (x, y, b) in series.items()}
        s.figures.append(
            figures.curves(
                ctx.writer,
                "sgd-lr-sweep",
                "Learning-rate sweep: mini-batch loss vs iteration (the original's figure)",
                f"iteration (mini-batch of {batch})",
                [
                    ("mini-batch mean loss (nats), first 20,000 samples", seed_view),
                    ("mini-batch mean loss (nats), whole run", series),
                ],
                ylim=[(0.0, 10.0), (0.0, 10.0)],
                caption="Lines: mean over seeds; bands: min–max across seeds. Left as the original "
                "drew it (20,000 samples, loss clipped at 10); right the whole run. A diverged "
                "run's curve stops where its loss stopped being finite.",
                alt=f"Mini-batch loss against iteration, one line per learning rate: {takeaway}.",
            )
        )
    else:
        s.notes.append("No sweep cell kept its batch losses: no sweep figure.")


def _grid(ctx: Context, s: Section) -> None:
    cells = pick_cell_groups(ctx.runs, "sgd-grid")
    if not cells:
        s.notes.append(missing_note(["sgd-grid"], "no grid table or heatmap"))
        return
    from mnist_suite.report.classification import chosen_cell

    groups = sorted(cells.values(), key=lambda g: (_net(g), _batch(g), -(_lr(g) or 0)))
    chosen = chosen_cell(cells)  # the same Group objects as the rows: compared by identity
    rows, marked = [], set()
    for i, g in enumerate(groups):
        dev = g.summary("dev_accuracy")
        test = g.summary("test_accuracy") if g is chosen else None
        epochs = summarize(g.values("best_epoch"))
        rows.append(
            [
                _net(g),
                g.config.get("batch_size"),
                _lr(g),
                _state(g),
                dev.mean,
                dev.half_width,
                dev.min,
                dev.max,
                epochs.mean,
                test.mean if test else None,
                test.half_width if test else None,
                g.summary("wall_seconds").mean,
            ]
        )
        if g is chosen:
            marked.add(i)
    n_seeds = max((len(g.runs) for g in groups), default=0)
    s.tables.append(
        Table(
            "Grid over seeds: dev accuracy of each point (its best dev epoch)",
            [
                ("net", "text"),
                ("batch", "int"),
                ("lr", "g"),
                ("state", "text"),
                ("dev acc (mean)", "pct"),
                ("95% CI", "±pct"),
                ("dev min", "pct"),
                ("dev max", "pct"),
                ("best epoch (mean)", "f2"),
                ("test acc (chosen point only)", "pct"),
                ("test 95% CI", "±pct"),
                ("wall (s, mean)", "f2"),
            ],
            rows,
            marked,
            note=(
                f"Bold: the point chosen on mean dev accuracy ({chosen.cell}, "
                f"{_accuracy_text(chosen.summary('dev_accuracy'))} dev over "
                f"{len(chosen.done)} seeds); "
                "the test set is reported for that point only."
                if chosen is not None
                else "No grid point finished."
            )
            + f" Up to {n_seeds} seeds per point.",
        )
    )
    for net in sorted({_net(g) for g in groups}):
        _grid_heatmap(ctx, s, net, [g for g in groups if _net(g) == net], chosen)
    _grid_scatter(ctx, s, groups, chosen)


def _grid_heatmap(ctx, s, net, groups: list[Group], chosen: Group | None) -> None:
    lrs = sorted({_lr(g) for g in groups if _lr(g) is not None}, reverse=True)
    batches = sorted({_batch(g) for g in groups if _batch(g)})
    if not lrs or not batches:
        return
    matrix = np.full((len(lrs), len(batches)), np.nan)
    texts = [["missing"] * len(batches) for _ in lrs]
    mark = None
    for g in groups:
        if _lr(g) not in lrs or _batch(g) not in batches:
            continue
        i, j = lrs.index(_lr(g)), batches.index(_batch(g))
        dev = g.summary("dev_accuracy")
        if dev.mean is not None:
            matrix[i, j] = 100 * dev.mean
            hw = f"±{100 * dev.half_width:.2f}" if dev.half_width is not None else "n=1"
            texts[i][j] = f"{100 * dev.mean:.2f}\n{hw}"
        else:
            texts[i][j] = _state(g).split(":")[0].replace(" @ step ", "\n@")
        if g is chosen:
            mark = (i, j)
    best_text = (
        f"the chosen point is lr {_lr(chosen):g}, batch {_batch(chosen)}"
        if chosen is not None and mark is not None
        else "the grid's chosen point is in the other network's panel"
    )
    finite = matrix[np.isfinite(matrix)]
    spread = f" Dev means range {finite.min():.2f}–{finite.max():.2f}%." if finite.size else ""
    s.figures.append(
        figures.heatmap(
            ctx.writer,
            f"sgd-grid-{net}",
            f"SGD grid, net 784-{net}-10: mean dev accuracy over seeds",
            matrix,
            [f"{lr:g}" for lr in lrs],
            [str(b) for b in batches],
            xlabel="batch size (samples)",
            ylabel="learning rate (mean-loss step)",
            cbar_label="dev accuracy, mean over seeds (%)",
            texts=texts,
            mark=mark,
            caption="Each cell: mean dev accuracy over seeds (each run at its best dev epoch) "
            "and the half-width of its 95% interval; grey cells diverged, failed or have no run. "
            "Star and red outline: the point chosen on dev.",
            alt=f"Heatmap of mean dev accuracy for the 784-{net}-10 network over learning rate "
            f"and batch size; {best_text}.{spread}",
        )
    )


def _grid_scatter(ctx, s, groups: list[Group], chosen: Group | None) -> None:
    points = [
        (f"net {_net(g)}, batch {_batch(g)}", _lr(g), 100 * r.metric("dev_accuracy"))
        for g in groups
        for r in g.done
        if _lr(g) is not None and r.metric("dev_accuracy") is not None
    ]
    if not points:
        return
    means = {}
    for label, _, y in points:
        means.setdefault(label, []).append(y)
    top = max(means, key=lambda k: np.mean(means[k]))
    s.figures.append(
        figures.hparam_scatter(
            ctx.writer,
            "sgd-grid-hparams",
            "SGD grid: dev accuracy of every run against its hyperparameters",
            points,
            xlabel="learning rate (mean-loss step, log scale)",
            ylabel="dev accuracy at the best epoch (%)",
            caption="One marker per run (seed); marker shape, colour and line style name the "
            "network and batch size; lines join the means over seeds.",
            alt="Scatter of dev accuracy against learning rate, one series per network and "
            f"batch size; {top} has the highest mean over its learning rates"
            + (f", and the chosen point is {chosen.cell}." if chosen is not None else "."),
        )
    )


def _accuracy_text(s) -> str:
    return mean_ci(s.mean, s.half_width, "accuracy")
