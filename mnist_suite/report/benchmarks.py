"""pytest-benchmark results: times, GFLOP/s, share of the GEMM ceiling, speed-ups, targets,
the run's noise, and the history of the headline ratios across stored runs.

Reads the ``extra_info`` conventions of ``bench/conftest.py``: ``flops`` / ``gflop_per_s``,
``role = "ceiling"`` (the float32 GEMM), ``fraction_of_ceiling`` and ``speedup_over_*`` with
their per-round ``ratios`` (median, quartiles; measured in alternation with the reference),
``target``, ``unstable``, and the file's ``targets`` verdicts and ``noise``. Older files
(ratios of medians, ``baseline``) are read too: missing ratios are computed as they were.
The history view reads every stored run under ``<bench dir>/history/`` (pytest-benchmark's
``--benchmark-storage``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from matplotlib.figure import Figure

from mnist_suite import benchcompare, verdicts
from mnist_suite.envinfo import machine_info
from mnist_suite.files import read_json_object
from mnist_suite.report import figures
from mnist_suite.report.collect import BenchFile, as_dict, number
from mnist_suite.report.common import Context
from mnist_suite.report.document import Section, Table

log = logging.getLogger(__name__)
FLAGGED = (verdicts.MISSED, verdicts.UNSTABLE)  # target verdicts shown in bold


def _size(extra: dict, params: dict, name: str) -> str:
    """The problem size in words; parameters already spelled in the name are left out."""
    if extra.get("shape"):
        return str(extra["shape"])
    parts = [str(extra["net"])] if extra.get("net") else []
    parts += [
        f"{k}={extra[k]}" for k in ("batch", "classes", "samples", "steps_per_call") if k in extra
    ]
    parts += [
        f"{k}={v}"
        for k, v in params.items()
        if k not in ("net", "sizes", "batch") and f"{v}" not in name
    ]
    return ", ".join(parts)


def bench_rows(bench: BenchFile) -> list[dict]:
    """One dict per benchmark: its names, size, median (s), GFLOP/s, ratios and baseline."""
    rows = []
    for b in bench.benchmarks:
        extra, params = as_dict(b.get("extra_info")), as_dict(b.get("params"))
        median = number(as_dict(b.get("stats")).get("median"))
        flops = number(extra.get("flops"))
        gflops = number(extra.get("gflop_per_s")) or (
            flops / median / 1e9 if flops and median else None
        )
        rows.append(
            {
                "name": str(b.get("name", "?")),
                "fullname": str(b.get("fullname") or b.get("name", "?")),
                "group": str(b.get("group") or ""),
                "size": _size(extra, params, str(b.get("name", ""))),
                "dtype": str(extra.get("dtype") or params.get("dtype") or ""),
                "median": median,
                "per_step": number(extra.get("us_per_step")),
                "gflops": gflops,
                "ceiling": extra.get("role") == "ceiling",
                "fraction": number(extra.get("fraction_of_ceiling")),
                "baseline": str(extra.get("baseline") or ""),
                "speedup": number(extra.get("speedup_over_baseline")),
                "others": {
                    k.removeprefix("speedup_over_"): v
                    for k, v in extra.items()
                    if k.startswith("speedup_over_")
                    and k != "speedup_over_baseline"
                    and number(v) is not None
                },
                "target": as_dict(extra.get("target")),
                "spreads": _spreads(extra),
                "unstable": extra.get("unstable") is True,
            }
        )
    _fill_ratios(rows)
    return rows


def _spreads(extra: dict) -> str:
    """The paired ratios as text: ``fraction_of_ceiling 0.61 [0.58–0.64]`` (median [q1–q3])."""
    parts = []
    for metric, r in as_dict(extra.get("ratios")).items():
        q = [number(as_dict(r).get(k)) for k in ("median", "q1", "q3")]
        if None not in q:
            name = metric.removeprefix("speedup_over_").replace("fraction_of_ceiling", "of ceiling")
            parts.append(f"{name} {q[0]:.3g} [{q[1]:.3g}–{q[2]:.3g}]")
    return "; ".join(parts)


def _fill_ratios(rows: list[dict]) -> None:
    """Ratios the file does not carry, from this file's medians (as bench/conftest.py adds
    them: :func:`mnist_suite.benchcompare.median_ratios`)."""
    ceiling = next((r for r in rows if r["ceiling"] and r["gflops"]), None)
    if ceiling is None:  # an older file: its fastest GEMM is the ceiling
        gemms = [r for r in rows if "gemm" in (r["name"] + r["group"]).lower() and r["gflops"]]
        ceiling = max(gemms, key=lambda r: r["gflops"], default=None)
    by_name = {r["fullname"]: r for r in rows} | {r["name"]: r for r in rows}
    for r in rows:
        base = by_name.get(r["baseline"])
        fraction, speedup = benchcompare.median_ratios(
            r["gflops"], ceiling and ceiling["gflops"], r["median"], base and base["median"]
        )
        r["fraction"] = fraction if r["fraction"] is None else r["fraction"]
        r["speedup"] = speedup if r["speedup"] is None else r["speedup"]
        r["baseline_name"] = base["name"] if base else r["baseline"].split("::")[-1]
    for r in rows:
        r["ceiling_gflops"] = ceiling["gflops"] if ceiling else None


def _target_word(t: dict) -> str:
    """A stored target verdict in :mod:`mnist_suite.verdicts`' words (files that only say
    ``met: true/false`` included)."""
    stated = str(t.get("verdict"))
    if stated in (verdicts.MET, verdicts.MISSED, verdicts.UNSTABLE):
        return stated
    return {True: verdicts.MET, False: verdicts.MISSED}.get(t.get("met"), "?")


def _targets(bench: BenchFile, rows: list[dict]) -> list[list]:
    """[benchmark, metric, value, q1, q3, target, met] from the file's verdicts, else computed.

    ``unstable`` (the quartiles straddle the target) is never shown as a miss.
    """
    names = {r["fullname"]: r["name"] for r in rows}
    if bench.targets:
        return [
            [
                names.get(str(t.get("benchmark")), str(t.get("benchmark"))),
                str(t.get("metric")),
                number(t.get("value")),
                number(t.get("q1")),
                number(t.get("q3")),
                number(t.get("target")),
                _target_word(t),
            ]
            for t in bench.targets
        ]
    out = []
    for r in rows:
        values = {"fraction_of_ceiling": r["fraction"], "speedup_over_baseline": r["speedup"]}
        values |= {f"speedup_over_{k}": number(v) for k, v in r["others"].items()}
        for metric, goal in r["target"].items():
            value, goal = values.get(metric), number(goal)
            if goal is None:
                out.append([r["name"], metric, value, None, None, None, "?"])
                continue
            t = benchcompare.target_row(r["name"], metric, goal, {metric: value})
            out.append([r["name"], metric, value, None, None, goal, t["verdict"] or "?"])
    return out


def _cpu_key(model: str) -> str:
    """A CPU model for comparison: ``Intel(R) Xeon(R) CPU`` and ``intel xeon cpu`` are one."""
    return " ".join(re.sub(r"\((R|TM)\)", "", model).lower().split())


def measured_on(bench: BenchFile) -> str:
    """Where ``bench`` was measured, and whether that is another machine than this one.

    Its ratios are fractions of its own CPU's GEMM ceiling and speed-ups on its own cores: a
    file of another CPU model or core count (say the committed ``latest.json`` read on a new
    machine) says nothing yet about this one, and the page says so.
    """
    info = bench.machine_info
    cpu = benchcompare.cpu({"machine_info": info})
    cores = as_dict(info.get("cpu")).get("count") or info.get("cpu_count")
    node = str(info.get("node") or "")
    there = ", ".join([cpu or "an unrecorded CPU", *([f"{cores} cores"] if cores else [])])
    here = machine_info()
    if bool(cpu) and _cpu_key(cpu) == _cpu_key(here["cpu"]) and cores == here["cores"]:
        return f"measured on this machine's CPU ({there})"
    return (
        f"measured on another machine: {there}{f', node {node}' if node else ''} "
        f"(this one: {here['cpu']}, {here['cores']} cores)"
    )


def newest(ctx: Context) -> BenchFile | None:
    """The benchmark file the report's first screen reads: the newest."""
    return max(ctx.benches, key=lambda b: b.datetime) if ctx.benches else None


def headline_rows(ctx: Context) -> list[list]:
    """The newest benchmark file's target verdicts, for the report's first screen."""
    bench = newest(ctx)
    if bench is None:
        return []
    return [[f"{bench.path.name}: {t[0]}", *t[1:]] for t in _targets(bench, bench_rows(bench))]


def benchmarks(ctx: Context) -> Section:
    """Per benchmark file: a table, the targets' verdicts and a bar chart."""
    s = Section(
        "benchmarks",
        "Benchmarks",
        "pytest-benchmark results: median time per call, GFLOP/s where the benchmark records "
        "its FLOPs, the share of the float32 GEMM ceiling and speed-ups over references (the "
        "original's loop, the eager step, Keras fit). Each ratio is measured in alternation: every "
        "round of the kernel is followed by its reference (the ceiling runs with the kernel's "
        "BLAS threads), and the ratio is the median over rounds with its quartiles [q1–q3]. "
        "A target is met when q1 reaches it, missed when q3 is below it, and **unstable** when "
        "the quartiles straddle it: the run was too noisy to tell, which is not a miss.",
    )
    if not ctx.benches:
        where = f"in {ctx.bench_dir}" if ctx.bench_dir else "(no --bench folder given)"
        s.notes.append(f"No benchmark results {where}: run `nox -s bench` first.")
        history(ctx, s)
        return s
    for bench in ctx.benches:
        rows = bench_rows(bench)
        ceiling = rows[0]["ceiling_gflops"] if rows else None
        s.tables.append(
            Table(
                f"{bench.path.name} ({bench.datetime[:19]}), {measured_on(bench)}",
                [
                    ("group", "text"),
                    ("benchmark", "text"),
                    ("size", "text"),
                    ("dtype", "text"),
                    ("median (µs)", "t"),
                    ("per step (µs)", "t"),
                    ("GFLOP/s", "f2"),
                    ("of GEMM ceiling", "pct"),
                    ("baseline", "text"),
                    ("speed-up", "x"),
                    ("other speed-ups", "text"),
                    ("paired ratios: median [q1–q3]", "text"),
                    ("unstable", "text"),
                ],
                [
                    [
                        r["group"],
                        r["name"],
                        r["size"],
                        r["dtype"],
                        None if r["median"] is None else 1e6 * r["median"],
                        r["per_step"],
                        r["gflops"],
                        r["fraction"],
                        r["baseline_name"],
                        r["speedup"],
                        ", ".join(f"{v:.2f}× over {k}" for k, v in r["others"].items()),
                        r["spreads"],
                        "unstable" if r["unstable"] else "",
                    ]
                    for r in rows
                ],
                {i for i, r in enumerate(rows) if r["ceiling"]},
                note=(
                    f"GEMM ceiling in this run (bold): {ceiling:.1f} GFLOP/s. {_noise(bench)}"
                    if ceiling
                    else "No GEMM benchmark in this file: no ceiling to compare with."
                ),
                hide_empty=True,
            )
        )
        targets = _targets(bench, rows)
        if targets:
            s.tables.append(
                Table(
                    f"Targets met in {bench.path.name}, {measured_on(bench)}",
                    [
                        ("benchmark", "text"),
                        ("metric", "text"),
                        ("measured (median)", "f2"),
                        ("q1", "f2"),
                        ("q3", "f2"),
                        ("target (at least)", "f2"),
                        ("met", "text"),
                    ],
                    targets,
                    {i for i, t in enumerate(targets) if t[6] in FLAGGED},
                    note=_targets_note([t[6] for t in targets]),
                    hide_empty=True,
                )
            )
        timed = [r for r in rows if r["median"]]
        # Calls of different lengths (150 steps, a whole epoch) compare per step, when all say.
        per_step = bool(timed) and all(r["per_step"] for r in timed)
        if timed:
            what = "time per training step" if per_step else "median time per call"
            s.figures.append(
                figures.bars(
                    ctx.writer,
                    f"bench-{bench.path.stem}",
                    f"Benchmarks: {what} ({bench.path.name})",
                    [f"{r['group']}: {r['name']}" if r["group"] else r["name"] for r in timed],
                    [r["per_step"] if per_step else 1e6 * r["median"] for r in timed],
                    xlabel=f"{what} (µs, log scale)",
                    subtitle=measured_on(bench),
                    annotations=[_annotation(r) for r in timed],
                    caption="Annotated with GFLOP/s and the share of the GEMM ceiling, or "
                    f"speed-ups over baselines; {measured_on(bench)}.",
                )
            )
    history(ctx, s)
    return s


def stored_runs(history: Path) -> list[dict]:
    """Every stored run under ``history`` (any depth), oldest first.

    Each: ``datetime``, ``commit`` (10 hex digits, ``+`` if dirty), ``mode``, ``path``,
    ``series`` (CPU model and ratio definition: runs whose ratios can be set side by side) and
    ``ratios`` ``{(benchmark name, metric): (median, q1, q3)}``; ``targets`` ``{key: goal}``.
    """
    runs = []
    for path in sorted(Path(history).rglob("*.json")) if Path(history).is_dir() else []:
        data = read_json_object(path)
        if not data or not isinstance(data.get("benchmarks"), list):
            continue
        paired = benchcompare.ratios(data, by="name")
        ratios = {key: tuple(r[k] for k in benchcompare.QUARTILES) for key, r in paired.items()}
        targets = {}
        for b in data["benchmarks"]:
            extra = as_dict(as_dict(b).get("extra_info"))
            for metric, goal in as_dict(extra.get("target")).items():
                if number(goal) is not None:
                    targets[str(b.get("name")), metric] = number(goal)
        commit = as_dict(data.get("commit_info"))
        runs.append(
            {
                "datetime": str(data.get("datetime") or ""),
                "commit": str(commit.get("id") or "?")[:10] + ("+" if commit.get("dirty") else ""),
                "mode": str(data.get("mode") or "full"),
                "busy": as_dict(data.get("noise")).get("competing_processes") or 0,
                "series": _series(data),
                "path": path,
                "ratios": ratios,
                "targets": targets,
            }
        )
    return sorted(runs, key=lambda r: r["datetime"])


def _series(data: dict) -> str:
    """A run's CPU model (short) and ratio definition: a fraction of the CPU's own GEMM ceiling
    differs by CPU, so runs of two CPUs are two series, never one line."""
    model = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b.*|\s+(?=\s)", "", benchcompare.cpu(data))
    return f"{model.strip() or 'unknown CPU'}, definition {benchcompare.definition(data)}"


def history(ctx: Context, s: Section) -> None:
    """Each headline ratio (one with a target) against the stored runs, with its IQR band."""
    if ctx.bench_dir is None:
        return
    runs = [r for r in stored_runs(Path(ctx.bench_dir) / "history") if r["ratios"]]
    if not runs:
        s.notes.append(
            f"No stored runs in {Path(ctx.bench_dir) / 'history'}: `nox -s bench` keeps each run "
            "there, and this section then plots the headline ratios run after run."
        )
        return
    goals: dict[tuple[str, str], float] = {}
    for run in runs:
        goals |= run["targets"]
    headline = sorted(k for k in goals if any(k in run["ratios"] for run in runs))
    rows = [
        [
            run["datetime"][:16].replace("T", " "),
            run["commit"],
            run["mode"] + (f", +{run['busy']} busy" if run["busy"] else ""),
            run["series"],
            f"{name} {metric}",
            *run["ratios"][name, metric],
            goals[name, metric],
        ]
        for run in runs
        for name, metric in headline
        if (name, metric) in run["ratios"]
    ]
    s.tables.append(
        Table(
            f"History: headline ratios in {len(runs)} stored runs",
            [
                ("run (UTC)", "text"),
                ("commit", "text"),
                ("mode", "text"),
                ("CPU, ratio definition", "text"),
                ("ratio", "text"),
                ("median", "f3"),
                ("q1", "f3"),
                ("q3", "f3"),
                ("target", "f3"),
            ],
            rows,
            {i for i, row in enumerate(rows) if row[7] < row[8]},
            note=(
                "Bold: the upper quartile is below the target (a miss in that run). A ratio is a "
                "fraction of the CPU's own GEMM ceiling: compare runs of one CPU and definition."
            ),
        )
    )
    # A line needs two points: a ratio only one stored run holds is a line of text (its row is
    # in the table), not a panel with one dot.
    plotted = [k for k in headline if sum(k in run["ratios"] for run in runs) >= 2]
    single: dict[str, list[str]] = {}  # stored run -> its ratios no other run holds
    for name, metric in headline:
        if (name, metric) not in plotted:
            (run,) = [r for r in runs if (name, metric) in r["ratios"]]
            when = f"{run['commit']}, {run['datetime'][:16].replace('T', ' ')} UTC"
            median = run["ratios"][name, metric][0]
            single.setdefault(when, []).append(
                f"{name} {metric} {median:.3f} (target {goals[name, metric]:.3f})"
            )
    for when, ratios in single.items():
        s.notes.append(
            f"Only one stored run ({when}) holds these ratios, so they have no history to draw "
            f"yet (medians): {'; '.join(ratios)}."
        )
    if plotted:
        s.figures.append(_history_figure(ctx, runs, plotted, goals))


def _history_figure(ctx: Context, runs: list[dict], headline: list, goals: dict):
    """One panel per headline ratio: the median per stored run, its IQR band, the target; one
    line per series (CPU and ratio definition), so runs of two CPUs are never joined. A series
    keeps its colour and marker in every panel; one legend above the panels, off the data."""
    runs = [r for r in runs if any(k in r["ratios"] for k in headline)]
    series_style = {
        series: (f"C{i % 10}", figures.MARKERS[i % len(figures.MARKERS)])
        for i, series in enumerate(dict.fromkeys(r["series"] for r in runs))
    }
    fig = Figure(figsize=(9, 2.4 * len(headline) + 0.6), layout="constrained")
    axes = fig.subplots(len(headline), 1, squeeze=False)[:, 0]
    labels = [
        f"{r['commit'][:7]}\n{r['datetime'][5:16].replace('T', ' ')}"
        + (f"\n+{r['busy']} busy" if r["busy"] else "")
        for r in runs
    ]
    handles = {}
    for ax, (name, metric) in zip(axes, headline, strict=True):
        for series, (color, marker) in series_style.items():
            xs = [
                i
                for i, r in enumerate(runs)
                if r["series"] == series and (name, metric) in r["ratios"]
            ]
            if not xs:
                continue
            med, q1, q3 = zip(*(runs[i]["ratios"][name, metric] for i in xs), strict=True)
            label = f"median: {series}"
            (handles[label],) = ax.plot(xs, med, marker=marker, ls="-", color=color, label=label)
            ax.fill_between(xs, q1, q3, alpha=0.25, color=color, lw=0)
        handles["target"] = ax.axhline(
            goals[name, metric], color="k", linestyle="--", linewidth=1, label="target"
        )
        ax.set_title(f"{name}: {metric}", fontsize=9)
        ax.set_ylabel("ratio")
        ax.set_xticks(range(len(runs)), labels, fontsize=7)
        ax.set_xlim(-0.5, len(runs) - 0.5)
    fig.legend(
        list(handles.values()), list(handles), loc="outside upper center", ncols=2, fontsize=8
    )
    axes[-1].set_xlabel("stored run (commit, UTC time)")
    return ctx.writer.save(
        fig,
        "bench-history",
        "Benchmark history: headline ratios by run",
        "Median per stored run with its interquartile band over rounds, one line per CPU and "
        "ratio definition; dashed: the target. Ratios with a single stored run are listed in "
        "the notes above.",
    )


def _targets_note(words: list[str]) -> str:
    parts = []
    if verdicts.MISSED in words:
        parts.append("Bold missed: even the upper quartile is below the target.")
    if verdicts.UNSTABLE in words:
        parts.append(
            "Bold unstable: the quartiles straddle the target; the run was too noisy to decide "
            "(see the noise above), so this is neither a pass nor a miss: re-run when quieter."
        )
    return " ".join(parts) or "This run met every target (lower quartile at or above it)."


def _noise(bench: BenchFile) -> str:
    """The run's noise in words, from the file's ``noise`` (absent in older files)."""
    data = as_dict(read_json_object(bench.path))
    noise = as_dict(data.get("noise"))
    if not noise:
        return ""
    where = as_dict(as_dict(data.get("machine_info")).get("where"))
    place = where.get("image") or ("a container" if where.get("in_container") else "the host")
    load = [number(x) for x in (noise.get("loadavg_before") or [])[:1]]
    load += [number(x) for x in (noise.get("loadavg_after") or [])[:1]]
    parts = []
    if len(load) == 2 and None not in load:
        parts.append(f"1-min load average {load[0]:.2f} before, {load[1]:.2f} after")
    if noise.get("competing_processes"):
        parts.append(f"{noise['competing_processes']} busy processes started for the run")
    for threads, c in as_dict(noise.get("ceiling")).items():
        cv, gf = number(as_dict(c).get("cv")), number(as_dict(c).get("median_gflop_per_s"))
        if cv is not None and gf is not None:
            parts.append(f"ceiling with {threads} thread(s) {gf:.0f} GFLOP/s, CV {cv:.0%}")
    return f"Measured on {place}. Noise: {'; '.join(parts)}." if parts else ""


def _annotation(r: dict) -> str:
    parts = []
    if r["gflops"]:
        parts.append(f"{r['gflops']:.1f} GFLOP/s")
    if r["fraction"] is not None and not r["ceiling"]:
        parts.append(f"{r['fraction']:.0%} of GEMM")
    if r["speedup"]:
        parts.append(f"{r['speedup']:.1f}× vs {r['baseline_name']}")
    parts += [f"{number(v):.1f}× vs {k}" for k, v in list(r["others"].items())[:2]]
    return ", ".join(parts)
