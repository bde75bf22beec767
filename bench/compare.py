"""Regression gate: compare a benchmark run's paired ratios with a stored baseline run.

    python bench/compare.py [--current FILE] [--baseline FILE] [--history DIR] [--tolerance F]

Compares ratios, never raw times (a ratio's two sides are measured in alternation, so the
machine's load mostly cancels): every ``extra_info["ratios"][metric]`` (fraction of the GEMM
ceiling, speed-ups; higher is better) present in both files. A ratio **regressed** when the
current median falls below the baseline's lower quartile by more than its own noise allows:

    current median < baseline q1 - tolerance · baseline median - (current q3 - current q1) / 2

so a wide current spread (a noisy run) needs a larger drop to count. The baseline defaults to
the newest stored run in the history folder other than the current one, of the same mode
(quick/full) and the same number of busy processes started by ``--load``.
Exit 0: no regression; 1: regressions (listed by name); 2: bad usage or files.
Standard library only, so it runs from any Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HISTORY = Path("bench/results/history")
CURRENT = Path("bench/results/latest.json")
TOLERANCE = 0.05
QUARTILES = ("median", "q1", "q3")


def load(path: Path) -> dict:
    """A pytest-benchmark JSON file as a dict; ValueError naming the file if it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: no 'benchmarks' list; not a pytest-benchmark file")
    return data


def ratios(data: dict) -> dict[tuple[str, str], dict]:
    """``{(benchmark fullname, metric): {"median", "q1", "q3", ...}}`` of a run's paired ratios."""
    found = {}
    for bench in data["benchmarks"]:
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        per_metric = extra.get("ratios") if isinstance(extra, dict) else None
        for metric, r in (per_metric or {}).items():
            if isinstance(r, dict) and all(isinstance(r.get(k), int | float) for k in QUARTILES):
                found[str(bench.get("fullname") or bench.get("name")), metric] = r
    return found


def compare(baseline: dict, current: dict, tolerance: float = TOLERANCE) -> list[dict]:
    """One row per ratio in both runs: names, both summaries, the threshold and the verdict."""
    base, cur = ratios(baseline), ratios(current)
    rows = []
    for key in sorted(base.keys() & cur.keys()):
        b, c = base[key], cur[key]
        threshold = b["q1"] - tolerance * b["median"] - (c["q3"] - c["q1"]) / 2
        if c["median"] < threshold:
            verdict = "REGRESSED"
        elif c["median"] > b["q3"] + tolerance * b["median"] + (c["q3"] - c["q1"]) / 2:
            verdict = "improved"
        else:
            verdict = "ok"
        rows.append(
            {"benchmark": key[0], "metric": key[1], "baseline": b, "current": c}
            | {"threshold": threshold, "verdict": verdict}
        )
    return rows


def _kind(data: dict) -> tuple:
    """Runs comparable by default: same mode, same number of busy processes we started."""
    noise = data.get("noise") if isinstance(data.get("noise"), dict) else {}
    return data.get("mode", "full"), noise.get("competing_processes", 0)


def _medians(data: dict) -> list:
    return [b.get("stats", {}).get("median") for b in data["benchmarks"] if isinstance(b, dict)]


def default_baseline(history: Path, current: dict, current_path: Path) -> Path | None:
    """The newest stored run other than the current one (which nox also stores), same kind."""
    candidates = []
    for path in history.rglob("*.json"):
        try:
            data = load(path)
        except ValueError:
            continue
        other = path.resolve() != current_path.resolve() and _medians(data) != _medians(current)
        if other and _kind(data) == _kind(current):
            candidates.append((str(data.get("datetime") or ""), path))
    return max(candidates)[1] if candidates else None


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
