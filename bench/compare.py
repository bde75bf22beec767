"""Regression gate: compare a benchmark run's paired ratios with a stored baseline run.

    python bench/compare.py [--current FILE] [--baseline FILE] [--history DIR] [--tolerance F]

The ratios and verdicts are :mod:`mnist_suite.benchcompare`'s (which explains the rule). The
baseline defaults to the newest stored run in the history folder other than the current one, of
the same mode (quick/full) and the same number of busy processes started by ``--load``.
Exit 0: no regression; 1: regressions (listed by name); 2: bad usage or files.
Needs only the standard library and this source tree, so it runs from any Python.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_suite.benchcompare import (
    TOLERANCE,
    compare,
    default_baseline,
    load,
    ratios,
)

HISTORY = Path("bench/results/history")
CURRENT = Path("bench/results/latest.json")
__all__ = ["compare", "default_baseline", "load", "main", "ratios"]


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
            raise ValueError(f"no stored run in {args.history} to compare with (run nox -s bench)")
        baseline = load(base_path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = compare(baseline, current, args.tolerance)
    if not rows:
        print(f"error: {args.current} and {base_path} share no paired ratio", file=sys.stderr)
        return 2
    print(f"baseline {base_path} ({baseline.get('datetime', '?')[:19]})")
    print(f"current  {args.current} ({current.get('datetime', '?')[:19]})")
    for row in rows:
        print(
            f"{row['verdict']:>9}  {row['benchmark'].split('::')[-1]} {row['metric']}: "
            f"{_spread(row['current'])} vs {_spread(row['baseline'])}, "
            f"threshold {row['threshold']:.3f}"
        )
    regressed = sorted({r["benchmark"] for r in rows if r["verdict"] == "REGRESSED"})
    if regressed:
        print(f"regressed beyond their noise: {', '.join(regressed)}")
        return 1
    print(f"no regression in {len(rows)} ratios")
    return 0


if __name__ == "__main__":
    sys.exit(main())
