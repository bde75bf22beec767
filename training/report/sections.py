"""Section builders: each reads the runs it needs defensively and says what is missing.

A builder gets the :class:`Context` (all runs, benchmark files, the figure writer) and returns a
:class:`Section`; absent jobs, failed/diverged/interrupted/running runs and missing artifacts
become notes and table states, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.report import figures
from training.report.collect import (
    BenchFile,
    RunRecord,
    number,
    pick,
    pick_cells,
)
from training.report.document import Section, Table
from training.report.figures import FigureWriter
from training.report.seed import SEED_CURVES, SOURCE, seed_figure

CLASSIFIERS = ("softmax-seed", "softmax", "mlp-seed", "mlp", "sgd-seed")
# Config fields worth a glance in the tables, in display order.
KEY_FIELDS = (
    "model",
    "variant",
    "widths",
    "width",
    "hidden",
    "latent_dim",
    "normalisation",
    "epochs",
    "iterations",
    "batch_size",
    "lr",
    "eta",
    "momentum",
    "optimizer",
    "schedule",
    "reduction",
    "noise",
    "n_train",
)
HEADLINES = ("test_accuracy", "test_mse_pixels", "test_mse", "final_train_loss")


@dataclass
class Context:
    runs: list[RunRecord]
    benches: list[BenchFile]
    writer: FigureWriter
    runs_dir: Path
    bench_dir: Path | None


def key_config(run: RunRecord, limit: int = 5) -> str:
    parts = []
    for key in KEY_FIELDS:
        if key in run.config and len(parts) < limit:
            value = run.config[key]
            if isinstance(value, list):
                value = "-".join(map(str, value))
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def state_text(run: RunRecord | None) -> str:
    """'done', 'diverged @ step 120', 'failed: ValueError …', 'missing'."""
    if run is None:
        return "missing"
    if run.state == "diverged":
        step = run.metric("diverged_at_step")
        return f"diverged @ step {step:.0f}" if step is not None else "diverged"
    if run.state in ("failed", "interrupted") and run.message:
        return f"{run.state}: {run.message[:80]}"
    return run.state


def _done_metric(run: RunRecord | None, name: str) -> float | None:
    # Partial metrics of an unfinished run are not results.
    return run.metric(name) if run is not None and run.state == "done" else None


def _missing_note(jobs: list[str], what: str) -> str:
    return f"No runs of {', '.join(jobs)}: {what}."


def _curve_kind(run: RunRecord) -> str | None:
    """The history kind to draw curves from: per-epoch rows if any, else periodic evaluations."""
    kinds = [r.get("kind") for r in run.history]
    for kind in ("epoch", "eval", "step"):
        if kind in kinds:
            return kind
    return None


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    pts = [(r.get("step"), number(r.get(key))) for r in rows]
    pts = [(s, v) for s, v in pts if isinstance(s, int | float) and v is not None]
    if not pts:
        return None
    x, y = zip(*pts, strict=True)
    return np.asarray(x, float), np.asarray(y, float)


# --- runs overview ------------------------------------------------------------------------


def runs_overview(ctx: Context, expected: list[str]) -> Section:
    s = Section(
        "runs",
        "Runs",
        f"Every run directory found under {ctx.runs_dir}, with its state. Tables below use one "
        "run per job (or per cell of a batch job): the full profile when present, a finished "
        "run before others, then the newest.",
    )
    rows = []
    for run in ctx.runs:
        headline = next(
            (f"{k}={run.metric(k):.4g}" for k in HEADLINES if run.metric(k) is not None), ""
        )
        rows.append(
            [
                run.job,
                run.cell,
                run.profile,
                run.seed,
                state_text(run),
                headline,
                run.metric("wall_seconds"),
                run.path.name,
            ]
        )
    s.tables.append(
        Table(
            "All runs",
            [
                ("job", "text"),
                ("cell", "text"),
                ("profile", "text"),
                ("seed", "text"),
                ("state", "text"),
                ("headline metric", "text"),
                ("wall (s)", "f2"),
                ("run id", "text"),
            ],
            rows,
        )
    )
    seen = {r.job for r in ctx.runs}
    absent = [j for j in expected if j not in seen]
    if not ctx.runs:
        s.notes.append(f"No runs found under {ctx.runs_dir}.")
    elif absent:
        s.notes.append(f"Jobs with no runs: {', '.join(absent)}.")
    unfinished = [r for r in ctx.runs if r.state not in ("done",)]
    if unfinished:
        counts = {}
        for r in unfinished:
            counts[r.state] = counts.get(r.state, 0) + 1
        s.notes.append(
            "Runs not done: "
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            + " (shown as such; their figures are not used as results)."
        )
    return s


# --- classification -----------------------------------------------------------------------


def _grid_best(ctx: Context) -> tuple[RunRecord | None, int | None, float | None]:
    """The sgd-grid cell and epoch with the highest test accuracy (done cells only)."""
    best = (None, None, None)
    for run in pick_cells(ctx.runs, "sgd-grid").values():
        if run.state != "done":
            continue
        series = _series(run.rows("epoch"), "test_accuracy")
        candidates = list(zip(*series, strict=True)) if series else []
        if not candidates and run.metric("test_accuracy") is not None:
            candidates = [(None, run.metric("test_accuracy"))]
        for epoch, acc in candidates:
            if best[2] is None or acc > best[2]:
                best = (run, None if epoch is None else int(epoch), acc)
    return best


def classification(ctx: Context) -> Section:
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
        test = _done_metric(run, "test_accuracy")
        seed, seed_job = seed_figure(job, "test_accuracy")
        rows.append(
            [
                job,
                key_config(run) if run else "",
                run.profile if run else "",
                state_text(run),
                _done_metric(run, "train_accuracy"),
                _done_metric(run, "dev_accuracy"),
                test,
                _done_metric(run, "wall_seconds"),
                seed,
                seed_job,
                None if test is None or seed is None else test - seed,
            ]
        )
        runs.append(run)
    grid_run, grid_epoch, grid_acc = _grid_best(ctx)
    if grid_run is not None:
        seed, seed_job = seed_figure("sgd-grid", "test_accuracy")
        config = key_config(grid_run) + (f", best epoch={grid_epoch}" if grid_epoch else "")
        at_best = next((r for r in grid_run.rows("epoch") if r.get("step") == grid_epoch), {})
        rows.append(
            [
                f"sgd-grid (best: {grid_run.cell})",
                config,
                grid_run.profile,
                state_text(grid_run),
                number(at_best.get("train_accuracy")),
                None,
                grid_acc,
                grid_run.metric("wall_seconds"),
                seed,
                seed_job,
                None if seed is None else grid_acc - seed,
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
        s.notes.append(_missing_note(absent, "their rows read 'missing'"))
    if not pick_cells(ctx.runs, "sgd-grid"):
        s.notes.append(_missing_note(["sgd-grid"], "its best point is not in the table"))

    for job, run in zip(CLASSIFIERS, runs, strict=False):
        if run is None:
            continue
        ref = _learning_curves(ctx.writer, job, run)
        if ref:
            s.figures.append(ref)
    best = [r for r in runs if r is not None and r.array("confusion", "matrix") is not None]
    best = [r for r in best if _done_metric(r, "test_accuracy") is not None]
    if best:
        run = max(best, key=lambda r: r.metric("test_accuracy"))
        s.figures.append(_confusion(ctx.writer, run))
    else:
        s.notes.append("No finished classifier saved a confusion matrix: no confusion figure.")
    return s


def _learning_curves(writer: FigureWriter, job: str, run: RunRecord):
    kind = _curve_kind(run)
    if kind is None:
        return None
    rows = run.rows(kind)
    keys = sorted({k for r in rows for k in r if k not in ("kind", "step", "time")})
    loss = {k: v for k in keys if k.endswith("loss") and (v := _series(rows, k))}
    acc = {
        k: (x, 100 * y)
        for k in keys
        if k.endswith("accuracy") and (s := _series(rows, k))
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


# --- environment --------------------------------------------------------------------------


def environment(ctx: Context, generator: dict) -> Section:
    s = Section(
        "environment",
        "Environment",
        "Where the results were produced, from the envelope every run's config.json and every "
        "benchmark file carries (CPU, cores, versions, git commit, container image).",
    )
    envs: dict[tuple, list[str]] = {}
    for run in ctx.runs:
        m, c, v = (run.envelope.get(k, {}) for k in ("machine_info", "commit_info", "versions"))
        key = (
            str(m.get("cpu", "")),
            m.get("cores"),
            str(m.get("python_version", "")),
            str(v.get("numpy", "")),
            str(v.get("tensorflow-cpu") or v.get("tensorflow") or ""),
            str(v.get("keras", "")),
            str(c.get("id", ""))[:10] + (" (dirty)" if c.get("dirty") else ""),
            str(m.get("image") or ("container" if m.get("in_container") else "host")),
            ", ".join(f"{k}={val}" for k, val in sorted(dict(m.get("threads") or {}).items())),
        )
        envs.setdefault(key, []).append(run.job)
    for bench in ctx.benches:
        m, c = bench.machine_info, bench.commit_info
        cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
        key = (
            str(cpu.get("brand_raw", "")),
            cpu.get("count"),
            str(m.get("python_version", "")),
            "",
            "",
            "",
            str(c.get("id", ""))[:10] + (" (dirty)" if c.get("dirty") else ""),
            str(m.get("image") or ""),
            "",
        )
        envs.setdefault(key, []).append(f"bench:{bench.path.name}")
    rows = []
    for key, who in envs.items():
        names = sorted(set(who))
        more = " …" if len(names) > 6 else ""
        rows.append([*key, f"{len(who)}: " + ", ".join(names[:6]) + more])
    g = generator
    rows.append(
        [
            g["cpu"],
            g["cores"],
            g["python"],
            g["numpy"],
            "",
            "",
            g["commit"],
            g["image"],
            "",
            "this report (generator)",
        ]
    )
    s.tables.append(
        Table(
            "Machines and versions",
            [
                ("CPU", "text"),
                ("cores", "text"),
                ("Python", "text"),
                ("NumPy", "text"),
                ("TensorFlow", "text"),
                ("Keras", "text"),
                ("git commit", "text"),
                ("image", "text"),
                ("threads", "text"),
                ("results (count: jobs)", "text"),
            ],
            rows,
        )
    )
    if len(envs) > 1:
        s.notes.append(
            "Results come from more than one environment: compare timings within one row only."
        )
    return s


# --- the TensorFlow SGD experiments ---------------------------------------------------------


def _cell_lr(run: RunRecord) -> float | None:
    return number(run.config.get("lr"))


def _net(run: RunRecord) -> str:
    widths = run.config.get("widths")
    return "-".join(map(str, widths)) if isinstance(widths, list) else str(widths or "?")


def sgd(ctx: Context) -> Section:
    s = Section(
        "sgd",
        "TensorFlow SGD: learning-rate sweep and grid",
        "The seed's one-epoch learning-rate sweep (batch 32, sum-reduced loss, so the "
        "mean-gradient step is 32 × lr) and the lr × batch size × network grid it promised and "
        "never ran (mean-reduced loss, per-epoch test accuracy from one run per point).",
    )
    _sweep(ctx, s)
    _grid(ctx, s)
    return s


def _sweep(ctx: Context, s: Section) -> None:
    cells = pick_cells(ctx.runs, "sgd-lr-sweep")
    if not cells:
        s.notes.append(_missing_note(["sgd-lr-sweep"], "no sweep table or figure"))
        return
    rows, series = [], {}
    for cell, run in sorted(cells.items(), key=lambda kv: -(_cell_lr(kv[1]) or 0.0)):
        seed, _ = seed_figure("sgd-lr-sweep", "final_train_loss", cell)
        final = _done_metric(run, "final_train_loss")
        stuck = run.metrics.get("stuck_at_chance")
        rows.append(
            [
                cell,
                _cell_lr(run),
                run.profile,
                state_text(run),
                final,
                _done_metric(run, "final_batch_loss"),
                seed,
                None if final is None or seed is None else final - seed,
                {True: "yes", False: "no"}.get(stuck),
            ]
        )
        losses = run.array("batch_losses", "loss")
        if losses is None:  # fall back to per-batch history rows
            losses = _series(run.rows("batch"), "loss")
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
        s.figures.append(
            figures.curves(
                ctx.writer,
                "sgd-lr-sweep",
                "Learning-rate sweep: mini-batch loss vs iteration (the seed's figure)",
                "iteration (mini-batch of 32)",
                [("mini-batch mean loss (nats)", series)],
                ylim=[(0.0, 10.0)],
                caption="As in the seed, the loss axis is clipped at 10; a diverged run's "
                "curve stops where the loss stopped being finite.",
            )
        )
    else:
        s.notes.append("No sweep cell kept its batch losses: no sweep figure.")


def _grid(ctx: Context, s: Section) -> None:
    cells = pick_cells(ctx.runs, "sgd-grid")
    if not cells:
        s.notes.append(_missing_note(["sgd-grid"], "no grid table or heatmap"))
        return
    runs = sorted(
        cells.values(),
        key=lambda r: (_net(r), number(r.config.get("batch_size")) or 0, -(_cell_lr(r) or 0)),
    )
    per_epoch = {}
    for run in runs:
        series = _series(run.rows("epoch"), "test_accuracy")
        per_epoch[run.cell] = (
            dict(zip(series[0].astype(int), series[1], strict=True)) if series else {}
        )
    epochs = sorted({e for accs in per_epoch.values() for e in accs})
    best_run, best_epoch, best_acc = _grid_best(ctx)
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
                run.metric("wall_seconds"),
            ]
        )
        if run is best_run:
            marked.add(i)
    s.tables.append(
        Table(
            "Grid: test accuracy after each epoch",
            [
                ("net", "text"),
                ("batch", "int"),
                ("lr", "g"),
                ("state", "text"),
                *((f"ep {e}", "pct") for e in epochs),
                ("best epoch", "int"),
                ("best test acc", "pct"),
                ("wall (s)", "f2"),
            ],
            rows,
            marked,
            note=(
                f"Bold: the best point ({best_run.cell}, epoch {best_epoch}, {best_acc:.2%})."
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
            f"SGD grid, net 784-{net}-10: best-epoch test accuracy",
            matrix,
            [f"{lr:g}" for lr in lrs],
            [str(b) for b in batches],
            xlabel="batch size (samples)",
            ylabel="learning rate (mean-loss step)",
            cbar_label="test accuracy at the best epoch (%)",
            texts=texts,
            mark=mark,
            caption="Each cell: the highest per-epoch test accuracy and its epoch; grey cells "
            "diverged, failed or have no run. Red outline: the best point of the whole grid.",
        )
    )


# --- benchmarks ---------------------------------------------------------------------------

BASELINE_WORDS = ("loop", "eager", "keras", "set_weights", "seed")


def _bench_rows(bench: BenchFile) -> list[dict]:
    """One dict per benchmark: name, group, size, median seconds, GFLOP/s, baseline name."""
    rows = []
    for b in bench.benchmarks:
        stats = b.get("stats") if isinstance(b.get("stats"), dict) else {}
        extra = b.get("extra_info") if isinstance(b.get("extra_info"), dict) else {}
        median = number(stats.get("median"))
        flops = number(extra.get("flops"))
        gflops = flops / median / 1e9 if flops and median else number(extra.get("gflops"))
        params = b.get("params") if isinstance(b.get("params"), dict) else {}
        size = (
            extra.get("size")
            or extra.get("shape")
            or ", ".join(f"{k}={v}" for k, v in params.items())
        )
        rows.append(
            {
                "name": str(b.get("name", "?")),
                "group": str(b.get("group") or ""),
                "size": str(size),
                "median": median,
                "gflops": gflops,
                "baseline": extra.get("baseline"),
            }
        )
    return rows


def _baseline_for(row: dict, rows: list[dict]) -> dict | None:
    """The benchmark ``row`` is compared with: ``extra_info['baseline']`` names it; otherwise
    the one benchmark of the same group whose name says it is the slow reference."""
    named = row["baseline"]
    if isinstance(named, str) and named:
        return next((r for r in rows if named in (r["name"], r["name"].split("[")[0])), None)
    group = [r for r in rows if r["group"] == row["group"] and r is not row]
    slow = [r for r in group if any(w in r["name"].lower() for w in BASELINE_WORDS)]
    mine = any(w in row["name"].lower() for w in BASELINE_WORDS)
    return slow[0] if len(slow) == 1 and not mine else None


def benchmarks(ctx: Context) -> Section:
    s = Section(
        "benchmarks",
        "Benchmarks",
        "pytest-benchmark results: median time per call, GFLOP/s where the benchmark records "
        "its FLOPs, the share of the float32 GEMM ceiling measured in the same file, and the "
        "speed-up over its baseline (the seed-style loop, the eager step, Keras fit).",
    )
    if not ctx.benches:
        where = f"in {ctx.bench_dir}" if ctx.bench_dir else "(no --bench folder given)"
        s.notes.append(f"No benchmark results {where}: run `nox -s bench` first.")
        return s
    for bench in ctx.benches:
        rows = _bench_rows(bench)
        gemm = [r["gflops"] for r in rows if "gemm" in (r["name"] + r["group"]).lower()]
        ceiling = max((g for g in gemm if g), default=None)
        table_rows = []
        for r in rows:
            base = _baseline_for(r, rows)
            speedup = (
                base["median"] / r["median"] if base and base["median"] and r["median"] else None
            )
            table_rows.append(
                [
                    r["group"],
                    r["name"],
                    r["size"],
                    None if r["median"] is None else 1e6 * r["median"],
                    r["gflops"],
                    None if not (ceiling and r["gflops"]) else r["gflops"] / ceiling,
                    base["name"] if base else "",
                    speedup,
                ]
            )
        s.tables.append(
            Table(
                f"{bench.path.name} ({bench.datetime[:19]})",
                [
                    ("group", "text"),
                    ("benchmark", "text"),
                    ("size", "text"),
                    ("median (µs)", "g"),
                    ("GFLOP/s", "f2"),
                    ("of GEMM ceiling", "pct"),
                    ("baseline", "text"),
                    ("speed-up", "x"),
                ],
                table_rows,
                note=(
                    f"GEMM ceiling in this file: {ceiling:.1f} GFLOP/s."
                    if ceiling
                    else "No GEMM benchmark in this file: no ceiling to compare with."
                ),
            )
        )
        timed = [r for r in rows if r["median"]]
        if timed:
            s.figures.append(
                figures.bars(
                    ctx.writer,
                    f"bench-{bench.path.stem}",
                    f"Benchmarks: median time per call ({bench.path.name})",
                    [f"{r['group']}: {r['name']}" if r["group"] else r["name"] for r in timed],
                    [1e6 * r["median"] for r in timed],
                    xlabel="median time per call (µs, log scale)",
                    annotations=[
                        f"{r['gflops']:.1f} GFLOP/s" if r["gflops"] else "" for r in timed
                    ],
                    caption="Annotated with GFLOP/s where the benchmark records its FLOPs.",
                )
            )
    return s


# --- reconstruction: PCA and autoencoders -------------------------------------------------

AE_JOBS = ("ae-seed", "ae")
UNITS = {"zscore": "z-score units", "unit": "pixel units [0, 1]"}


def _pca_ks(run: RunRecord) -> list[int]:
    ks = run.metrics.get("ks")
    return sorted(int(k) for k in ks if number(k) is not None) if isinstance(ks, list) else []


def reconstruction(ctx: Context) -> Section:
    s = Section(
        "reconstruction",
        "Reconstruction: PCA and autoencoders",
        "Test-set reconstruction error in each run's own units (z-scored pixels for the seed's "
        "models), in pixel units ([0, 1]) and as the fraction of variance unexplained (FVU = "
        "MSE ÷ total test variance), next to PCA at the same latent size k.",
    )
    pca = pick(ctx.runs, "pca")
    cells = {job: pick_cells(ctx.runs, job) for job in AE_JOBS}
    absent = [j for j, run in (("pca", pca), *((j, cells[j]) for j in AE_JOBS)) if not run]
    if absent:
        s.notes.append(_missing_note(absent, "their rows and figures are not shown"))
    if pca is not None:
        _pca_variance(s, pca)
    _mse_table(s, pca, cells)
    _denoising_table(s, cells)
    _reconstruction_figures(ctx, s, pca, cells)
    return s


def _pca_variance(s: Section, pca: RunRecord) -> None:
    ratios = pca.metrics.get("explained_variance_ratio")
    ratios = ratios if isinstance(ratios, list) and pca.state == "done" else []
    rows = []
    for i in (1, 2):
        ours = number(ratios[i - 1]) if len(ratios) >= i else None
        seed, _ = seed_figure("pca", f"explained_variance_ratio_{i}")
        rows.append(
            [
                f"PC {i}",
                pca.metrics.get("normalisation", ""),
                pca.profile,
                state_text(pca),
                ours,
                seed,
                None if ours is None or seed is None else ours - seed,
            ]
        )
    s.tables.append(
        Table(
            "PCA explained variance ratio (the seed's PCA(2))",
            [
                ("component", "text"),
                ("normalisation", "text"),
                ("profile", "text"),
                ("state", "text"),
                ("ours", "f4"),
                ("seed's", "f4"),
                ("Δ", "f4"),
            ],
            rows,
        )
    )


def _mse_table(s: Section, pca: RunRecord | None, cells: dict) -> None:
    rows = []
    if pca is not None:
        for k in _pca_ks(pca):
            pixels = _done_metric(pca, f"test_mse_pixels_k{k}")
            rows.append(
                [
                    f"pca (k={k})",
                    "pca",
                    k,
                    pca.metrics.get("normalisation", ""),
                    pca.profile,
                    state_text(pca),
                    _done_metric(pca, f"test_mse_k{k}"),
                    pixels,
                    _done_metric(pca, f"fvu_k{k}"),
                    pixels,
                    1.0 if pixels else None,
                    None,
                    None,
                ]
            )
    for job in AE_JOBS:
        for cell, run in cells[job].items():
            own = _done_metric(run, "test_mse")
            seed, _ = seed_figure(job, "test_mse", cell)
            rows.append(
                [
                    f"{job}/{cell}",
                    run.metrics.get("variant", ""),
                    run.metrics.get("latent_dim"),
                    run.metrics.get("normalisation") or run.config.get("normalisation", "zscore"),
                    run.profile,
                    state_text(run),
                    own,
                    _done_metric(run, "test_mse_pixels"),
                    _done_metric(run, "fvu"),
                    _done_metric(run, "pca_test_mse_pixels"),
                    _done_metric(run, "mse_vs_pca"),
                    seed,
                    None if own is None or seed is None else own - seed,
                ]
            )
    if not rows:
        return
    s.tables.append(
        Table(
            "Test reconstruction MSE",
            [
                ("model", "text"),
                ("variant", "text"),
                ("latent k", "int"),
                ("normalisation", "text"),
                ("profile", "text"),
                ("state", "text"),
                ("MSE (own units)", "f4"),
                ("MSE (pixels)", "f4"),
                ("FVU", "f4"),
                ("PCA MSE at k (pixels)", "f4"),
                ("÷ PCA", "f2"),
                ("seed's MSE", "f4"),
                ("Δ vs seed", "f4"),
            ],
            rows,
            note="Own units: z-scored pixels (the seed's scalar mean/std) or [0, 1] pixels. "
            f"The seed's figures are its final validation MSE in z-score units ({SOURCE}).",
        )
    )


def _denoising_table(s: Section, cells: dict) -> None:
    rows = []
    for job in AE_JOBS:
        for cell, run in cells[job].items():
            if run.metrics.get("variant") != "denoising" and not cell.startswith("denoising"):
                continue
            rows.append(
                [
                    f"{job}/{cell}",
                    state_text(run),
                    _done_metric(run, "noisy_mse_pixels"),
                    _done_metric(run, "test_mse_pixels"),
                    _done_metric(run, "denoised_vs_noisy"),
                    _done_metric(run, "pca_denoised_mse_pixels"),
                    _done_metric(run, "clean_input_mse_pixels"),
                ]
            )
    if rows:
        s.tables.append(
            Table(
                "Denoising: MSE against the clean test images (pixels)",
                [
                    ("model", "text"),
                    ("state", "text"),
                    ("noisy input", "f4"),
                    ("denoised", "f4"),
                    ("denoised ÷ noisy", "f2"),
                    ("PCA-denoised", "f4"),
                    ("clean input", "f4"),
                ],
                rows,
                note="The denoiser is fed the noisy test images (the seed fed clean ones).",
            )
        )


def _done_cells(cells: dict) -> list[tuple[str, RunRecord]]:
    return [
        (f"{job}/{c}", r) for job in AE_JOBS for c, r in cells[job].items() if r.state == "done"
    ]


def _reconstruction_figures(ctx: Context, s: Section, pca, cells) -> None:
    w = ctx.writer
    pca_done = pca if pca is not None and pca.state == "done" else None
    done = _done_cells(cells)

    # Components of PCA and single-layer encoders' weights, as images.
    rows = []
    if pca_done and (comp := pca_done.array("pca", "components")) is not None:
        rows.append(("PCA", comp[:10]))
    for label, run in done:
        kernel = run.array("encoder_weights", "kernel")  # (784, k)
        if kernel is not None and kernel.shape[1] <= 10:
            rows.append((label, kernel.T))
    if rows:
        s.figures.append(
            figures.image_grid(
                w,
                "pca-components",
                "PCA components and single-layer encoder weights",
                rows,
                col_label="component / latent unit",
                value_label="signed weight, each image scaled to its largest |w|",
                diverging=True,
                caption="Red positive, blue negative. PCA rows are the leading components.",
            )
        )

    # 2-D latents of the test set coloured by digit.
    panels = []
    if pca_done and (z := pca_done.array("latents", "z")) is not None:
        unit = UNITS.get(str(pca_done.metrics.get("normalisation")), "input units")
        panels.append(("PCA (k=2)", z, pca_done.array("latents", "labels"), unit))
    for label, run in done:
        z = run.array("latents", "z")
        if z is not None and z.ndim == 2 and z.shape[1] == 2:
            panels.append((label, z, run.array("latents", "labels"), "activation"))
    if panels:
        s.figures.append(
            figures.scatter2d(
                w,
                "latents-2d",
                "2-D latents of the test set, coloured by digit",
                panels,
                caption="PCA projects onto its first two components; the autoencoders' 2-unit "
                "codes are their bottleneck activations.",
            )
        )

    # Reconstructions of the same test images by each model.
    ref = None
    grid = []
    if pca_done and (recon := pca_done.npz("reconstructions")):
        ref = recon.get("indices")
        grid.append(("original", recon["original"]))
        grid += [(f"PCA k={k}", recon[f"k{k}"]) for k in _pca_ks(pca_done) if f"k{k}" in recon]
    for label, run in done:
        recon = run.npz("reconstructions") or {}
        if "reconstruction" not in recon:
            continue
        if ref is None:
            ref = recon.get("indices")
            grid.insert(0, ("original", recon["original"]))
        if np.array_equal(recon.get("indices"), ref):
            grid.append((label, recon["reconstruction"]))
    if len(grid) > 1:
        s.figures.append(
            figures.image_grid(
                w,
                "reconstructions",
                "Reconstructions of the same test images per model",
                grid,
                col_label="test image (the first of each digit)",
                caption="Denoisers reconstruct from their noisy inputs.",
            )
        )

    for label, run in done:
        recon = run.npz("reconstructions") or {}
        if "noisy" in recon and "reconstruction" in recon:
            slug = label.replace("/", "-")
            s.figures.append(
                figures.image_grid(
                    w,
                    f"denoising-{slug}",
                    f"Noisy, denoised and clean test images: {label}",
                    [
                        ("noisy input", recon["noisy"]),
                        ("denoised", recon["reconstruction"]),
                        ("clean", recon["original"]),
                    ],
                    col_label="test image (the first of each digit)",
                    value_label="pixel intensity, shown clipped to [0, 1]",
                )
            )

    # Test MSE against latent size: the PCA curve and each autoencoder's point.
    series = {}
    if pca_done and (ks := _pca_ks(pca_done)):
        ys = [pca_done.metric(f"test_mse_pixels_k{k}") for k in ks]
        pts = [(k, y) for k, y in zip(ks, ys, strict=True) if y is not None]
        if pts:
            series["PCA"] = tuple(np.asarray(v, float) for v in zip(*pts, strict=True))
    for label, run in done:
        k, y = run.metric("latent_dim"), run.metric("test_mse_pixels")
        if k is not None and y is not None:
            series[label] = (np.asarray([k]), np.asarray([y]))
    if series:
        s.figures.append(
            figures.curves(
                w,
                "mse-vs-k",
                "Test reconstruction MSE against latent size",
                "latent size k (log scale)",
                [("test MSE (pixel units², log scale)", series)],
                logx=True,
                logy=[True],
                caption="Lower is better; an autoencoder below the PCA curve beats the best "
                "linear code of its size. Denoisers are scored from noisy inputs.",
            )
        )

    for job in AE_JOBS:
        curves = {}
        for cell, run in cells[job].items():
            hist = run.npz("loss_history") or {}
            if "val_loss" in hist and "epoch" in hist:
                curves[f"{cell} ({run.state})" if run.state != "done" else cell] = (
                    hist["epoch"],
                    hist["val_loss"],
                )
        if curves:
            s.figures.append(
                figures.curves(
                    w,
                    f"loss-{job}",
                    f"Autoencoder test loss per epoch: {job}",
                    "epoch",
                    [("test MSE (own units, log scale)", curves)],
                    logy=[True],
                )
            )
