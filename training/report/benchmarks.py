"""pytest-benchmark results: times, GFLOP/s, share of the GEMM ceiling, speed-ups, targets."""

from __future__ import annotations

from training.report import figures
from training.report.collect import BenchFile, number
from training.report.common import (
    Context,
)
from training.report.document import Section, Table

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
