"""Regression gate: compare a benchmark run's paired ratios with a stored baseline run.

    python bench/compare.py [--current FILE] [--baseline FILE] [--history DIR] [--tolerance F]

The ratios and verdicts are :mod:`mnist_suite.benchcompare`'s (which explains the rule). The
baseline defaults to the newest stored run in the history folder other than the current one,
measured under the same ratio definition, on the same CPU model and with the same number of busy
processes started by ``--load``, of the same mode (quick/full) when there is one.
Exit 0: no regression; 1: regressions or definition errors (listed by name); 2: bad usage,
files, or two runs whose ratios are defined differently.
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
    load,
    ratios,
)

HISTORY = Path("bench/results/history")
CURRENT = Path("bench/results/latest.json")
__all__ = ["compare", "default_baseline", "load", "main", "ratios"]
WIDTH = max(map(len, (verdicts.BETTER, verdicts.WORSE, verdicts.SAME, verdicts.UNSTABLE)))


def _spread(r: dict) -> str:
    return f"{r['median']:.3f} [{r['q1']:.3f}, {r['q3']:.3f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--current", type=Path, default=CURRENT, help=f"default {CURRENT}")
    parser.add_argument("--baseline", type=Path, help="default: newest other run in --history")
    parser.add_argument("--history", type=Path, default=HISTORY, help=f"default {HISTORY}")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="of baseline median")
    args = parser.parse_args(argv)
    try:
        current = load(args.current)
        base_path = args.baseline or default_baseline(args.history, current, args.current)
        if base_path is None:
            raise ValueError(
                f"no stored run in {args.history} of the same kind to compare with "
                f"({describe_kind(current)}; run nox -s bench)"
            )
        baseline = load(base_path)
        comparable(baseline, current, str(base_path), str(args.current))
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
            f"{cpu(data) or 'CPU unknown'})"
        )
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
