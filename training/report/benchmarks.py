"""pytest-benchmark results: times, GFLOP/s, share of the GEMM ceiling, speed-ups, targets.

Reads the ``extra_info`` conventions of ``bench/conftest.py``: ``flops`` / ``gflop_per_s``,
``role = "ceiling"`` (the float32 GEMM), ``baseline`` (the full name of the slower benchmark),
``fraction_of_ceiling`` and ``speedup_over_*`` (ratios of medians within one run), ``target``,
and the file's ``targets`` verdicts. Ratios missing from a file are computed the same way here.
"""

from __future__ import annotations

from training.report import figures
from training.report.collect import BenchFile, number
from training.report.common import Context
from training.report.document import Section, Table


def _dict(obj) -> dict:
    return obj if isinstance(obj, dict) else {}


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
        extra, params = _dict(b.get("extra_info")), _dict(b.get("params"))
        median = number(_dict(b.get("stats")).get("median"))
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
                "target": _dict(extra.get("target")),
            }
        )
    _fill_ratios(rows)
    return rows


def _fill_ratios(rows: list[dict]) -> None:
    """Ratios the file does not carry, from this file's medians (as bench/conftest.py does)."""
    ceiling = next((r for r in rows if r["ceiling"] and r["gflops"]), None)
    if ceiling is None:  # an older file: its fastest GEMM is the ceiling
        gemms = [r for r in rows if "gemm" in (r["name"] + r["group"]).lower() and r["gflops"]]
        ceiling = max(gemms, key=lambda r: r["gflops"], default=None)
    by_name = {r["fullname"]: r for r in rows} | {r["name"]: r for r in rows}
    for r in rows:
        if r["fraction"] is None and ceiling and r["gflops"]:
            r["fraction"] = r["gflops"] / ceiling["gflops"]
        base = by_name.get(r["baseline"])
        if r["speedup"] is None and base and base["median"] and r["median"]:
            r["speedup"] = base["median"] / r["median"]
        r["baseline_name"] = base["name"] if base else r["baseline"].split("::")[-1]
    for r in rows:
        r["ceiling_gflops"] = ceiling["gflops"] if ceiling else None


def _targets(bench: BenchFile, rows: list[dict]) -> list[list]:
    """[benchmark, metric, value, target, met] from the file's verdicts, else from extra_info."""
    names = {r["fullname"]: r["name"] for r in rows}
    if bench.targets:
        return [
            [
                names.get(str(t.get("benchmark")), str(t.get("benchmark"))),
                str(t.get("metric")),
                number(t.get("value")),
                number(t.get("target")),
                {True: "yes", False: "NO"}.get(t.get("met"), "?"),
            ]
            for t in bench.targets
        ]
    out = []
    for r in rows:
        values = {"fraction_of_ceiling": r["fraction"], "speedup_over_baseline": r["speedup"]}
        values |= {f"speedup_over_{k}": number(v) for k, v in r["others"].items()}
        for metric, goal in r["target"].items():
            value = values.get(metric)
            met = (
                "?" if value is None or number(goal) is None else ("yes" if value >= goal else "NO")
            )
            out.append([r["name"], metric, value, number(goal), met])
    return out


def benchmarks(ctx: Context) -> Section:
    """Per benchmark file: a table, the targets' verdicts and a bar chart."""
    s = Section(
        "benchmarks",
        "Benchmarks",
        "pytest-benchmark results: median time per call, GFLOP/s where the benchmark records "
        "its FLOPs, the share of the float32 GEMM ceiling measured in the same run, and "
        "speed-ups over baselines (the seed-style loop, the eager step, Keras fit). Ratios are "
        "of medians within one run, so a shared, noisy machine affects both sides alike.",
    )
    if not ctx.benches:
        where = f"in {ctx.bench_dir}" if ctx.bench_dir else "(no --bench folder given)"
        s.notes.append(f"No benchmark results {where}: run `nox -s bench` first.")
        return s
    for bench in ctx.benches:
        rows = bench_rows(bench)
        ceiling = rows[0]["ceiling_gflops"] if rows else None
        s.tables.append(
            Table(
                f"{bench.path.name} ({bench.datetime[:19]})",
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
                    ]
                    for r in rows
                ],
                {i for i, r in enumerate(rows) if r["ceiling"]},
                note=(
                    f"GEMM ceiling in this run (bold): {ceiling:.1f} GFLOP/s."
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
                    f"Targets met in {bench.path.name}",
                    [
                        ("benchmark", "text"),
                        ("metric", "text"),
                        ("measured", "f2"),
                        ("target (at least)", "f2"),
                        ("met", "text"),
                    ],
                    targets,
                    {i for i, t in enumerate(targets) if t[4] == "NO"},
                    note="Bold: a target this run missed."
                    if any(t[4] == "NO" for t in targets)
                    else "This run met every target.",
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
                    annotations=[_annotation(r) for r in timed],
                    caption="Annotated with GFLOP/s and the share of the GEMM ceiling, or "
                    "speed-ups over baselines.",
                )
            )
    return s


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
