"""Regression gate: compare a benchmark run's paired ratios with a stored baseline run.

    python bench/compare.py [--current FILE] [--baseline FILE] [--history DIR] [--tolerance F]

The ratios and verdicts are :mod:`mnist_suite.benchcompare`'s (which explains the rule). The
baseline defaults to the newest stored run in the history folder other than the current one,
measured under the same ratio definition, on the same machine kind (CPU vendor, family, model,
stepping, flags, cores, memory: :mod:`mnist_suite.envinfo`) and with the same number of busy
processes started by ``--load``, of the same mode (quick/full) when there is one. A current run
whose stored copy is the only run of its kind in the history is the first of its kind: nothing
to compare, said in one line, exit 0 (the next run of that kind is compared with it).
Exit 0: no regression, or the first run of its kind; 1: regressions or definition errors
(listed by name); 2: bad usage, files, no stored run of the kind, or two runs whose ratios are
defined differently or measured on other machine kinds.
Needs NumPy and this source tree, not the suite's environment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_suite import verdicts
from mnist_suite.benchcompare import (
    TOLERANCE,
    comparable,
    compare,
    cpu,
    default_baseline,
    definition,
    describe_kind,
    describe_machine,
    identity,
    load,
    ratios,
    same_kind,
    stored,
    stored_copy,
)

HISTORY = Path("bench/results/history")
CURRENT = Path("bench/results/latest.json")
__all__ = ["compare", "default_baseline", "load", "main", "ratios"]
WIDTH = max(map(len, (verdicts.BETTER, verdicts.WORSE, verdicts.NOT_DETECTED, verdicts.UNSTABLE)))


def _spread(r: dict) -> str:
    return f"{r['median']:.3f} [{r['q1']:.3f}, {r['q3']:.3f}]"


def others(history: Path, current: dict) -> int:
    """How many stored runs of the history are of other kinds than ``current``."""
    return sum(not same_kind(data, current) for _, data in stored(history))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--current", type=Path, default=CURRENT, help=f"default {CURRENT}")
    parser.add_argument("--baseline", type=Path, help="default: newest other run in --history")
    parser.add_argument("--history", type=Path, default=HISTORY, help=f"default {HISTORY}")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="of baseline median")
    args = parser.parse_args(argv)
    try:
        current = load(args.current)
        if identity(current) is None:
            raise ValueError(f"{args.current} records no machine identity: comparable with none")
        base_path = args.baseline or default_baseline(args.history, current, args.current)
        copy = None if base_path else stored_copy(args.history, current)
        if copy is not None:
            print(
                f"nothing to compare: {args.current} is the first stored run of its kind "
                f"({describe_kind(current)}; stored as {copy}; {others(args.history, current)} "
                "stored runs of other kinds left out); the next one is compared with it"
            )
            return 0
        if base_path is None:
            raise ValueError(
                f"no stored run in {args.history} of the same kind to compare with "
                f"({describe_kind(current)}; run nox -s bench)"
            )
        baseline = load(base_path)
        note = comparable(baseline, current, str(base_path), str(args.current))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = compare(baseline, current, args.tolerance)
    if not rows:
        print(f"error: {args.current} and {base_path} share no paired ratio", file=sys.stderr)
        return 2
    for label, path, data in (
        ("baseline", base_path, baseline),
        ("current ", args.current, current),
    ):
        print(
            f"{label} {path} ({str(data.get('datetime', '?'))[:19]}, "
            f"{data.get('mode', 'full')}, ratio definition {definition(data)}, "
            f"{cpu(data) or 'CPU unknown'}: {describe_machine(data)})"
        )
    if note:
        print(note)
    for row in rows:
        print(
            f"{row['verdict']:>{WIDTH}}  {row['benchmark'].split('::')[-1]} {row['metric']}: "
            f"{_spread(row['current'])} vs {_spread(row['baseline'])}, "
            f"threshold {row['threshold']:.3f}"
        )
    broken = sorted({r["benchmark"] for r in rows if r["verdict"] == verdicts.DEFINITION_ERROR})
    if broken:
        print(f"definition error (a fraction of the ceiling above 1.05): {', '.join(broken)}")
    regressed = sorted({r["benchmark"] for r in rows if r["verdict"] == verdicts.WORSE})
    if regressed:
        print(f"regressed beyond their noise: {', '.join(regressed)}")
    if broken or regressed:
        return 1
    print(f"no regression in {len(rows)} ratios")
    return 0


if __name__ == "__main__":
    sys.exit(main())
