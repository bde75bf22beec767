"""Calibrate `mnist-suite compare` on real runs: how often each of its outcomes is wrong.

    python tools/calibrate.py POOL [WEAK_RUNS ...] [--md FILE] [--job softmax]
        [--delta 0,-0.1,-0.3,-1] [--sizes 3,4,6,9,12] [--max-seeds 12]
        [--seeds-per-side 4] [--draws 1000] [--design welch,relabelled] [--seed 0]

It reads runs only, never trains. POOL holds finished runs of unchanged code, many seeds per job
(``mnist-suite run softmax mlp-fast sgd-original --profile quick --seeds 0-99 --runs
build/calib/pool``); each WEAK_RUNS folder the runs of one job weakened with ``--set`` over some
of those seeds. Every figure is a run's test accuracy, which the machine's load does not move.
Every table is judged by compare's own code (:func:`mnist_suite.compare.compare` on sides built
with :func:`mnist_suite.compare.side_of_runs`; the looks of :mod:`mnist_suite.sequential`),
from records holding the run's real figure, shifted where an effect is injected.

Two sides of a table never share a run. The jobs hold no setting that changes a seed's random
streams and nothing else, so NEW is the runs of other seeds T than BASE's S:

- ``welch``: T under its own seeds: compare's unpaired (Welch) test;
- ``relabelled``: T's runs under S's seed numbers: compare pairs them seed for seed, as it pairs
  two revisions run on the same seeds when a change moves the random streams.

Sections (each rate with its Wilson 95% interval and its number of tables; "random" splits
overlap, so their interval is narrower than the evidence, "disjoint" ones are independent):

- **null**: every pooled job a row, ``--seeds-per-side`` seeds each side; a false alarm is a
  table with any better/worse row; how often a row reads equivalent or inconclusive.
- **gate**: the gate's jobs and settings, read from noxfile.py: NEW its ``GATE_SEEDS`` count of
  seeds against a baseline of its ``BASELINE_SEEDS`` count of other seeds; a false failure is
  a table ``--fail-on worse`` fails.
- **effects**: one job (``--job``), NEW shifted by each ``--delta`` (points of accuracy): the
  share of tables reading worse (better for a gain; for 0, any better/worse) at each of
  ``--sizes`` seeds per side, and with seeds until decided (sequential's schedule from 4 to
  ``--max-seeds``, its look confidence and freezing): the rate and the mean seeds used.
- **margin**: NEW shifted by exactly ± the metric's equivalence margin: the share of tables
  reading ``equivalent`` (false: the change is not inside the margin), fixed and until decided.
- **detection** per WEAK_RUNS folder: blocks of paired seeds, the weakened job against its
  unchanged runs (the other jobs the same runs on both sides); the share reading worse.

Output: one JSON document on stdout; ``--md FILE`` also writes the tables in markdown.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_suite import compare, sequential
from mnist_suite.errors import ConfigError
from mnist_suite.files import atomic_write_bytes
from mnist_suite.options import add_arguments, from_arguments
from mnist_suite.plan import parse_seeds
from mnist_suite.runs import newest_code, scan
from mnist_suite.verdicts import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE

ROOT = Path(__file__).resolve().parents[1]
METRIC = "test_accuracy"
WELCH, RELABELLED = "welch", "relabelled"
DESIGNS = (WELCH, RELABELLED)
FIRST_LOOK = 4  # compare --until-decided's default --seeds count


# --- rates ------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95% interval of a rate k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> dict:
    return {"count": k, "tables": n, "rate": k / n if n else None, "interval": wilson(k, n)}


# --- the pool ---------------------------------------------------------------------------------


def read_pool(folder: Path) -> dict[str, dict[int, object]]:
    """Finished runs per job and seed, each job at its newest code (as compare reads a folder);
    ConfigError (one line) for a folder with none, or a job run under several configs."""
    records, _ = newest_code([r for r in scan(folder) if r.readable])
    out: dict[str, dict[int, object]] = {}
    kinds: dict[str, set] = {}
    for run in records:
        if run.state == "done" and run.seed is not None and run.metric(METRIC) is not None:
            out.setdefault(run.job, {})[run.seed] = run
            kind = (run.cell, run.profile, json.dumps(run.config, sort_keys=True))
            kinds.setdefault(run.job, set()).add(kind)
    mixed = sorted(job for job, found in kinds.items() if len(found) > 1)
    if mixed:
        raise ConfigError(
            f"{folder}: {mixed[0]} has runs of {len(kinds[mixed[0]])} cells, profiles or "
            "configs: a pool holds one per job"
        )
    if not out:
        raise ConfigError(f"{folder}: no finished runs with a {METRIC}")
    return out


def common_seeds(pool: dict, jobs: list[str], needed: int, what: str) -> list[int]:
    """The seeds every one of ``jobs`` holds; ConfigError when fewer than ``needed``."""
    seeds = sorted(set.intersection(*(set(pool[j]) for j in jobs)))
    if len(seeds) < needed:
        raise ConfigError(
            f"{what} needs {needed} seeds of {', '.join(jobs)}; the pool holds {len(seeds)}"
        )
    return seeds


def record(run, seed: int, shift: float = 0.0):
    """The run as compare reads it, holding its figure alone (shifted by ``shift``) under
    ``seed``: no clock, so no speed row joins the table."""
    return replace(
        run,
        config_file=run.config_file | {"seed": int(seed)},
        metrics={METRIC: run.metric(METRIC) + shift},
    )


def sides(pool, base: dict, new: dict, design: str, shift: dict | None = None):
    """BASE and NEW sides: per job, the runs of the seeds ``base[job]`` and ``new[job]``; NEW's
    shifted by ``shift[job]``, and under BASE's first seed numbers when ``relabelled``."""
    shift = shift or {}
    b = [record(pool[j][s], s) for j, seeds in base.items() for s in seeds]
    n = [
        record(pool[j][s], label, shift.get(j, 0.0))
        for j, seeds in new.items()
        for s, label in zip(seeds, labels(base[j], seeds, design), strict=True)
    ]
    return compare.side_of_runs("base", b), compare.side_of_runs("new", n)


def labels(base: list[int], seeds: list[int], design: str) -> list[int]:
    """The seed numbers NEW's runs of ``seeds`` go under: their own, or BASE's first ones."""
    return base[: len(seeds)] if design == RELABELLED else seeds


def table(pool, base, new, design, rules, confidence, shift=None) -> list[dict]:
    """compare's rows of the calibrated metric for these two sides."""
    rows = compare.compare(*sides(pool, base, new, design, shift), rules, confidence)
    return [r for r in rows if r["metric"] == METRIC]


def splits(seeds: list[int], a: int, b: int, draws: int, rng):
    """(kind, S, T): ``draws`` random splits of ``a`` and ``b`` seeds, then the disjoint blocks
    of a + b seeds in seed order."""
    for _ in range(draws):
        picked = [int(s) for s in rng.choice(seeds, a + b, replace=False)]
        yield "random", picked[:a], picked[a:]
    for i in range(0, len(seeds) - (a + b) + 1, a + b):
        yield "disjoint", seeds[i : i + a], seeds[i + a : i + a + b]


def tally(counts: dict, kind: str, hit: bool, rows: list[dict]) -> None:
    entry = counts.setdefault(kind, {"hits": 0, "tables": 0, "rows": {}})
    entry["hits"] += hit
    entry["tables"] += 1
    for r in rows:
        entry["rows"][r["verdict"]] = entry["rows"].get(r["verdict"], 0) + 1


def rates(counts: dict, name: str) -> dict:
    """Each kind of split: the rate of ``name`` and every row verdict's count."""
    return {
        kind: {name: rate(c["hits"], c["tables"]), "row_verdicts": c["rows"]}
        for kind, c in counts.items()
    }


def alarm(rows: list[dict]) -> bool:
    return any(r["verdict"] in (BETTER, WORSE) for r in rows)


# --- sections ---------------------------------------------------------------------------------


def null(pool, k: int, draws: int, design: str, rules, confidence: float, rng) -> dict:
    """Unchanged code on both sides, other seeds: every pooled job a row."""
    jobs = sorted(pool)
    seeds = common_seeds(pool, jobs, 2 * k, "a null table")
    counts: dict = {}
    for kind, s, t in splits(seeds, k, k, draws, rng):
        rows = table(
            pool, dict.fromkeys(jobs, s), dict.fromkeys(jobs, t), design, rules, confidence
        )
        tally(counts, kind, alarm(rows), rows)
    return {"jobs": jobs, "seeds_per_side": k, "pool_seeds": len(seeds)} | rates(counts, "alarms")


def gate_settings(noxfile: Path = ROOT / "noxfile.py") -> dict:
    """The gate's jobs, seed counts and compare options, as ``nox -s gate`` passes them
    (read from noxfile.py's literals, so the calibration follows the gate)."""
    values: dict = {}
    for node in ast.parse(noxfile.read_text()).body:
        try:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
                names = [t.id for t in node.targets[0].elts]
                values |= dict(zip(names, ast.literal_eval(node.value), strict=True))
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                values[node.targets[0].id] = ast.literal_eval(node.value)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                values[node.target.id] += ast.literal_eval(node.value)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # not a literal (a Path, a call): no gate setting
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser, compare.CompareOptions)
    argv = ["--fail-on", "worse", *values["GATE_RULES"]]
    options = from_arguments(compare.CompareOptions, parser.parse_args(argv))
    return {
        "jobs": list(values["GATE_JOBS"]),
        "new_seeds": len(parse_seeds(values["GATE_SEEDS"])),
        "baseline_seeds": len(parse_seeds(values["BASELINE_SEEDS"])),
        "options": options,
    }


def gate(pool, draws: int, design: str, rng) -> dict:
    """The gate's pipeline at identical behaviour: its jobs' NEW seeds against a baseline of
    other seeds, at its settings; a false failure is a table ``--fail-on worse`` fails."""
    g = gate_settings()
    options, a, b = g["options"], g["baseline_seeds"], g["new_seeds"]
    jobs = [j for j in g["jobs"] if j in pool]
    out = {
        "jobs": jobs,
        "missing_jobs": [j for j in g["jobs"] if j not in pool],
        "baseline_seeds": a,
        "new_seeds": b,
        "compare_options": {"confidence": options.confidence, "min_effect": options.min_effect}
        | {"fail_on": options.fail_on, "fail_metric": options.fail_metric},
    }
    if not jobs:
        return out
    seeds = common_seeds(pool, jobs, a + b, "a gate table")
    counts: dict = {}
    rules, confidence = options.rules(), options.confidence
    for kind, s, t in splits(seeds, a, b, draws, rng):
        rows = table(
            pool, dict.fromkeys(jobs, s), dict.fromkeys(jobs, t), design, rules, confidence
        )
        tally(counts, kind, bool(compare.failing(rows, options)), rows)
    return out | rates(counts, "false_failures")


def found(rows: list[dict], delta: float) -> bool:
    """Whether the table shows the injected change: worse for a loss, better for a gain, any
    better/worse for none."""
    if delta == 0:
        return alarm(rows)
    wanted = WORSE if delta < 0 else BETTER
    return any(r["verdict"] == wanted for r in rows)


def until_decided(pool, job, s, t, design, rules, confidence, last, shift) -> tuple[list, int]:
    """compare --until-decided on one job's table: S and T in the order the looks take them,
    each look at sequential's confidence, decided rows frozen. (rows, seeds per side run)."""
    sizes = sequential.schedule(FIRST_LOOK, last)
    level = sequential.look_confidence(confidence, len(sizes))
    frozen: dict = {}
    reached: dict = {}
    for n in sizes:
        reached[(job, "")] = n
        base, new = sides(pool, {job: s[:n]}, {job: t[:n]}, design, {job: shift})
        rows = sequential.judge_look(base, new, rules, level, frozen, reached)
        if not sequential.undecided(rows):
            break
    return [r for r in rows if r["metric"] == METRIC], n


def effect_tables(pool, job, shift, decides, args, design, rules, rng) -> dict:
    """One job's tables with NEW shifted by ``shift``: at each fixed size, and until decided;
    ``decides(rows)`` is the outcome counted."""
    seeds = common_seeds(pool, [job], 2 * max(*args.sizes, args.max_seeds), f"{job}'s effects")
    fixed = {}
    for n in args.sizes:
        counts: dict = {}
        for kind, s, t in splits(seeds, n, n, args.draws, rng):
            rows = table(pool, {job: s}, {job: t}, design, rules, args.confidence, {job: shift})
            tally(counts, kind, decides(rows), rows)
        fixed[str(n)] = rates(counts, "rate")
    counts, used = {}, {}
    m = args.max_seeds
    for kind, s, t in splits(seeds, m, m, args.draws, rng):
        rows, n = until_decided(pool, job, s, t, design, rules, args.confidence, m, shift)
        tally(counts, kind, decides(rows), rows)
        used.setdefault(kind, []).append(n)
    sequential_rates = rates(counts, "rate")
    for kind, seeds_used in used.items():
        sequential_rates[kind]["mean_seeds"] = float(np.mean(seeds_used))
        sequential_rates[kind]["most_seeds"] = max(seeds_used)
    return {"fixed": fixed, "until_decided": sequential_rates}


def effects(pool, job: str, args, design: str, rules, rng) -> dict:
    out = {}
    for delta in args.delta:
        shift = delta / 100
        out[f"{delta:g}"] = effect_tables(
            pool, job, shift, lambda rows, d=delta: found(rows, d), args, design, rules, rng
        )
    return out


def margin(pool, job: str, args, design: str, rules, rng) -> dict:
    """NEW shifted by exactly ± the margin: a false equivalent is a table reading equivalent."""
    mean = float(np.mean([run.metric(METRIC) for run in pool[job].values()]))
    size = rules[METRIC].margin(mean)
    out = {"margin": size}
    for sign in (1, -1):
        out[f"{sign * 100 * size:+g}"] = effect_tables(
            pool,
            job,
            sign * size,
            lambda rows: any(r["verdict"] == EQUIVALENT for r in rows),
            args,
            design,
            rules,
            rng,
        )
    return out


def detection(pool, weak: dict, k: int, confidence: float, rules) -> dict:
    """A weakened job's runs against its unchanged ones in blocks of ``k`` paired seeds."""
    if len(weak) != 1:
        raise ConfigError(f"a weakened runs folder holds one job; this one holds {len(weak)}")
    ((job, runs),) = weak.items()
    if job not in pool:
        raise ConfigError(f"{job}: weakened, but the pool holds no runs of it")
    seeds = sorted(set(runs) & set.intersection(*(set(r) for r in pool.values())))
    effect = float(np.mean([runs[s].metric(METRIC) - pool[job][s].metric(METRIC) for s in seeds]))
    blocks = [seeds[i : i + k] for i in range(0, len(seeds) - k + 1, k)]
    hits = 0
    for block in blocks:
        base = [record(pool[j][s], s) for j in sorted(pool) for s in block]
        new = [record(runs[s] if j == job else pool[j][s], s) for j in sorted(pool) for s in block]
        rows = compare.compare(
            compare.side_of_runs("base", base), compare.side_of_runs("new", new), rules, confidence
        )
        hits += any(r["job"] == job and r["verdict"] == WORSE for r in rows)
    return {"job": job, "effect": effect, "seeds_per_side": k, "worse": rate(hits, len(blocks))}


# --- markdown ---------------------------------------------------------------------------------


def percent(x: float) -> str:
    """A share in percent: one decimal below 10%, whole numbers from there."""
    return f"{100 * x:.1f}%" if 100 * x < 10 else f"{100 * x:.0f}%"


def pct(r: dict) -> str:
    if r["rate"] is None:
        return "—"
    low, high = r["interval"]
    return f"{percent(r['rate'])} [{percent(low)}, {percent(high)}]"


def share(entry: dict, verdict: str) -> str:
    """The share of the tables' rows that read ``verdict``."""
    rows = entry["row_verdicts"]
    total = sum(rows.values())
    return percent(rows.get(verdict, 0) / total) if total else "—"


def markdown(doc: dict) -> str:
    lines = [
        f"Pool: {doc['pool_seeds']}; confidence {doc['confidence']:g}; margin and minimum "
        f"effect {doc['rule']}; seed {doc['seed']}.",
        "",
    ]
    for design, d in doc["designs"].items():
        nl = d["null"]
        lines += [
            "",
            f"**Null tables ({design}; {', '.join(nl['jobs'])}; {nl['seeds_per_side']} seeds "
            "per side).**",
            "",
            "| splits | tables | false alarms (any better/worse) | rate, 95% interval | rows "
            "equivalent | rows inconclusive |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for kind in ("random", "disjoint"):
            e = nl.get(kind)
            if e:
                lines.append(
                    f"| {kind} | {e['alarms']['tables']} | {e['alarms']['count']} | "
                    f"{pct(e['alarms'])} | {share(e, EQUIVALENT)} | {share(e, INCONCLUSIVE)} |"
                )
        g = d["gate"]
        if g["jobs"]:
            o = g["compare_options"]
            lines += [
                "",
                f"**The gate's pipeline ({design}; {', '.join(g['jobs'])}; {g['new_seeds']} "
                f"seeds against a baseline of {g['baseline_seeds']} others; confidence "
                f"{o['confidence']:g}, {' '.join(o['min_effect'])}, fail on worse).**",
                "",
                "| splits | tables | false failures | rate, 95% interval |",
                "| --- | --- | --- | --- |",
            ]
            for kind in ("random", "disjoint"):
                e = g.get(kind)
                if e:
                    f = e["false_failures"]
                    lines.append(f"| {kind} | {f['tables']} | {f['count']} | {pct(f)} |")
        title = f"**{doc['job']}, NEW shifted by δ ({design}): "
        lines += effect_markdown(
            title + "read worse (better for a gain; any better/worse for 0).**",
            d["effects"], "δ (pt)", "found",
        )  # fmt: skip
        lines += effect_markdown(
            title + "δ exactly ± the margin, a false equivalent.**",
            {k: v for k, v in d["margin"].items() if k != "margin"},
            "δ (pt)", "false equivalent",
        )  # fmt: skip
    for folder, w in doc["detection"].items():
        if w is not None:
            lines += [
                "",
                f"Weakened `{w['job']}` ({folder}): mean paired effect "
                f"{100 * w['effect']:+.2f} pt; {w['worse']['count']} of {w['worse']['tables']} "
                f"tables of {w['seeds_per_side']} paired seeds read worse: {pct(w['worse'])}.",
            ]
    return "\n".join(lines) + "\n"


def effect_markdown(title: str, by_delta: dict, head: str, word: str) -> list[str]:
    """One row per δ and seeds per side (fixed, then until decided): random splits, and the
    disjoint ones as "tables: rate"."""
    lines = [
        "",
        title,
        "",
        f"| {head} | seeds per side | tables | {word} | rate, 95% interval | disjoint splits | "
        "rows equivalent | rows inconclusive |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for delta, e in by_delta.items():
        for n, f in [*e["fixed"].items(), ("until decided", e["until_decided"])]:
            r = f["random"]["rate"]
            dis = f.get("disjoint", {}).get("rate")
            disjoint = f"{dis['tables']}: {pct(dis)}" if dis else "—"
            if "mean_seeds" in f["random"]:
                used = f["random"]["mean_seeds"], f["random"]["most_seeds"]
                n = f"until decided (mean {used[0]:.3g}, most {used[1]})"
            lines.append(
                f"| {delta} | {n} | {r['tables']} | {r['count']} | {pct(r)} | {disjoint} | "
                f"{share(f['random'], EQUIVALENT)} | {share(f['random'], INCONCLUSIVE)} |"
            )
    return lines


# --- command ----------------------------------------------------------------------------------


def numbers(kind):
    def parse(text: str):
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a list like 1,2,3") from None

    return parse


def calibrate(args) -> dict:
    rules = compare.parse_min_effects(args.min_effect, args.margin)
    pool = read_pool(args.pool)
    job = args.job or ("softmax" if "softmax" in pool else sorted(pool)[0])
    if job not in pool:
        raise ConfigError(f"--job {job}: the pool holds no runs of it ({', '.join(sorted(pool))})")
    if any(n < 2 for n in args.sizes) or args.max_seeds < FIRST_LOOK:
        raise ConfigError(f"--sizes from 2 and --max-seeds from {FIRST_LOOK} seeds per side")
    if not 0.5 <= args.confidence < 1 or args.draws < 1 or args.seeds_per_side < 2:
        raise ConfigError("--confidence in [0.5, 1), --draws from 1, --seeds-per-side from 2")
    unknown = [d for d in args.design if d not in DESIGNS]
    if unknown:
        raise ConfigError(f"--design {unknown[0]}: expected {' or '.join(DESIGNS)}")
    # Every section's seeds checked before any is judged: a pool too small is refused at once.
    common_seeds(pool, sorted(pool), 2 * args.seeds_per_side, "a null table")
    g = gate_settings()
    jobs = [j for j in g["jobs"] if j in pool]
    if jobs:
        common_seeds(pool, jobs, g["baseline_seeds"] + g["new_seeds"], "a gate table")
    common_seeds(pool, [job], 2 * max(*args.sizes, args.max_seeds), f"{job}'s effects")
    designs = {}
    for i, design in enumerate(args.design):
        # One generator per section and design: adding one never moves another's draws.
        rng = [np.random.default_rng([args.seed, i, section]) for section in range(4)]
        k = args.seeds_per_side
        designs[design] = {
            "null": null(pool, k, args.draws, design, rules, args.confidence, rng[0]),
            "gate": gate(pool, args.draws, design, rng[1]),
            "effects": effects(pool, job, args, design, rules, rng[2]),
            "margin": margin(pool, job, args, design, rules, rng[3]),
        }
    detected = {}
    for folder in args.weak:
        detected[str(folder)] = detection(
            pool, read_pool(folder), args.seeds_per_side, args.confidence, rules
        )
    return {
        "pool": str(args.pool),
        "pool_seeds": ", ".join(f"{j} {len(pool[j])} seeds" for j in sorted(pool)),
        "metric": METRIC,
        "confidence": args.confidence,
        "rule": rules[METRIC].describe()
        + " (minimum effect), ±"
        + rules[METRIC].describe_margin()
        + " (margin)",
        "seed": args.seed,
        "draws": args.draws,
        "job": job,
        "until_decided_looks": sequential.schedule(FIRST_LOOK, args.max_seeds),
        "designs": designs,
        "detection": detected,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pool", type=Path, help="finished runs of unchanged code, many seeds per job")
    p.add_argument("weak", type=Path, nargs="*", help="runs of one job weakened with --set")
    p.add_argument("--job", help="the job effects are injected into (default softmax)")
    p.add_argument("--delta", type=numbers(float), default=[0.0, -0.1, -0.3, -1.0],
                   help="injected effects in pt of accuracy (default 0,-0.1,-0.3,-1)")  # fmt: skip
    p.add_argument("--sizes", type=numbers(int), default=[3, 4, 6, 9, 12],
                   help="seeds per side of the fixed-seed tables (default 3,4,6,9,12)")  # fmt: skip
    p.add_argument("--max-seeds", type=int, default=sequential.DEFAULT_MAX_SEEDS,
                   help="until decided: the last look's seeds (default 12)")  # fmt: skip
    p.add_argument("--seeds-per-side", type=int, default=4, help="null and detection tables")
    p.add_argument("--draws", type=int, default=1000, help="random splits per rate")
    p.add_argument("--design", type=numbers(str), default=list(DESIGNS),
                   help="welch, relabelled or both (default both)")  # fmt: skip
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--min-effect", action="append", default=[], metavar="METRIC=X")
    p.add_argument("--margin", action="append", default=[], metavar="METRIC=X")
    p.add_argument("--seed", type=int, default=0, help="of the random splits")
    p.add_argument("--md", type=Path, help="also write the tables in markdown here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        doc = calibrate(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.md:
        atomic_write_bytes(args.md, markdown(doc).encode())
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
