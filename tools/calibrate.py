"""Calibrate `mnist-suite compare`: its table-wide false-alarm rate and its detection rate.

    python tools/calibrate.py BASE_RUNS [WEAK_RUNS ...] [--seeds-per-side 4] [--draws 1000]

BASE_RUNS holds finished runs of unchanged code over many seeds (e.g. ``mnist-suite run
mlp-fast softmax --profile quick --seeds 0-159``); each WEAK_RUNS the same runs of one job
weakened with ``--set`` (e.g. ``--set n_train=8500``) over some of those seeds. Figures are
accuracies, which the machine's load does not move.

- **Null tables, other seeds**: each side draws its own seeds (none shared: Welch), every job of
  BASE_RUNS is a row; a table is a false alarm when any row reads better or worse. Reported
  over ``--draws`` random splits (overlapping: their interval is too narrow) and over the
  disjoint splits (independent tables, a wider interval).
- **Null tables, same seeds**: both sides the same seeds of the same code: with deterministic
  seeds the paired differences are exactly 0, so no table can alarm (checked, not assumed).
- **Detection**: per WEAK_RUNS folder, disjoint blocks of paired seeds (the weakened job
  against its unchanged runs, the other jobs unchanged on both sides); the share of tables
  whose weakened row reads worse, and the mean paired effect.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_suite import compare
from mnist_suite.runs import find_runs, load_run
from mnist_suite.verdicts import BETTER, WORSE

METRIC = "test_accuracy"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95% interval of a rate k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def by_job(folder: Path) -> dict[str, dict[int, object]]:
    """Finished runs per job and seed."""
    out: dict[str, dict[int, object]] = {}
    for path in find_runs(folder):
        run = load_run(path)
        if run.state == "done" and run.seed is not None:
            out.setdefault(run.job, {})[run.seed] = run
    return out


def table(base: list, new: list, confidence: float, rules) -> list[dict]:
    """The accuracy rows of ``compare`` for these two sets of runs."""
    rows = compare.compare(
        compare.side_of_runs("base", base), compare.side_of_runs("new", new), rules, confidence
    )
    return [r for r in rows if r["metric"] == METRIC]


def alarms(rows: list[dict]) -> bool:
    return any(r["verdict"] in (BETTER, WORSE) for r in rows)


def null_other_seeds(jobs: dict, k: int, draws: int, confidence: float, rules) -> dict:
    seeds = sorted(set.intersection(*(set(runs) for runs in jobs.values())))
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(draws):
        picked = rng.choice(seeds, 2 * k, replace=False)
        a, b = picked[:k], picked[k:]
        rows = table(
            [jobs[j][s] for j in jobs for s in a], [jobs[j][s] for j in jobs for s in b],
            confidence, rules,
        )  # fmt: skip
        hits += alarms(rows)
    disjoint = [seeds[i : i + 2 * k] for i in range(0, len(seeds) - 2 * k + 1, 2 * k)]
    dis_hits = 0
    for block in disjoint:
        rows = table(
            [jobs[j][s] for j in jobs for s in block[:k]],
            [jobs[j][s] for j in jobs for s in block[k:]],
            confidence, rules,
        )  # fmt: skip
        dis_hits += alarms(rows)
    return {
        "draws": draws, "alarms": hits, "rate": hits / draws, "interval": wilson(hits, draws),
        "disjoint_tables": len(disjoint), "disjoint_alarms": dis_hits,
        "disjoint_interval": wilson(dis_hits, len(disjoint)), "rows_per_table": len(jobs),
        "seeds": len(seeds),
    }  # fmt: skip


def null_same_seeds(jobs: dict, again: dict, confidence: float, rules) -> dict:
    """The same seeds of the same code run twice: identical figures, no alarm possible."""
    tables = hits = 0
    for job, runs in again.items():
        seeds = sorted(set(runs) & set(jobs.get(job, {})))
        for i in range(0, len(seeds) - 3, 4):
            block = seeds[i : i + 4]
            rows = table([jobs[job][s] for s in block], [runs[s] for s in block], confidence, rules)
            tables += 1
            hits += alarms(rows) or any(r["diff"] != 0 for r in rows)
    return {"tables": tables, "alarms_or_nonzero": hits}


def detection(jobs: dict, weak: dict, k: int, confidence: float, rules) -> dict:
    ((job, runs),) = weak.items()
    seeds = sorted(set(runs) & set(jobs[job]))
    effect = float(np.mean([runs[s].metric(METRIC) - jobs[job][s].metric(METRIC) for s in seeds]))
    blocks = [seeds[i : i + k] for i in range(0, len(seeds) - k + 1, k)]
    found = 0
    for block in blocks:
        base = [jobs[j][s] for j in jobs for s in block]
        new = [runs[s] if j == job else jobs[j][s] for j in jobs for s in block]
        rows = table(base, new, confidence, rules)
        found += any(r["job"] == job and r["verdict"] == WORSE for r in rows)
    return {
        "job": job, "effect": effect, "tables": len(blocks), "detected": found,
        "rate": found / len(blocks) if blocks else None,
        "interval": wilson(found, len(blocks)), "seeds_per_side": k,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("weak", type=Path, nargs="*")
    parser.add_argument("--again", type=Path, help="runs of the same seeds and code, again")
    parser.add_argument("--seeds-per-side", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--min-effect", action="append", default=[])
    args = parser.parse_args(argv)
    rules = compare.parse_min_effects(args.min_effect)
    jobs = by_job(args.base)
    k = args.seeds_per_side
    out = {
        "confidence": args.confidence,
        "min_effect": {m: r.describe() for m, r in rules.items()},
        "null_other_seeds": null_other_seeds(jobs, k, args.draws, args.confidence, rules),
        "detection": {
            str(w): detection(jobs, by_job(w), k, args.confidence, rules) for w in args.weak
        },
    }
    if args.again:
        out["null_same_seeds"] = null_same_seeds(jobs, by_job(args.again), args.confidence, rules)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
