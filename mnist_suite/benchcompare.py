"""Paired benchmark ratios of two runs and their verdicts: the one place that logic lives.

Used by ``bench/compare.py`` (the ``bench_compare`` nox session), ``mnist-suite compare`` and
the report's benchmark history. Standard library only, so ``bench/compare.py`` runs from any
Python.

Compares ratios, never raw times (a ratio's two sides are measured in alternation, so the
machine's load mostly cancels): every ``extra_info["ratios"][metric]`` (fraction of the GEMM
ceiling, speed-ups; higher is better) present in both files. A ratio **regressed** when the
current median falls below the baseline's lower quartile by more than its own noise allows:

    current median < baseline q1 - tolerance · baseline median - (current q3 - current q1) / 2

so a wide current spread (a noisy run) needs a larger drop to count; ``improved`` mirrors it
above the upper quartile. ``tolerance`` is the minimum effect on a ratio.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

TOLERANCE = 0.05  # of the baseline median, beyond the quartiles and the current spread
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


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def ratios(data: dict, by: str = "fullname") -> dict[tuple[str, str], dict]:
    """``{(benchmark name, metric): {"median", "q1", "q3", ...}}`` of a run's paired ratios.

    ``by`` names the benchmark field used as its name (``fullname``, else ``name``).
    """
    found = {}
    for bench in data.get("benchmarks") or []:
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        per_metric = extra.get("ratios") if isinstance(extra, dict) else None
        for metric, r in (per_metric if isinstance(per_metric, dict) else {}).items():
            if isinstance(r, dict) and all(_finite(r.get(k)) for k in QUARTILES):
                found[str(bench.get(by) or bench.get("name")), metric] = r
    return found


def verdict(base: dict, cur: dict, tolerance: float = TOLERANCE) -> tuple[str, float]:
    """(``REGRESSED`` / ``improved`` / ``ok``, the regression threshold) of one ratio."""
    spread = (cur["q3"] - cur["q1"]) / 2
    threshold = base["q1"] - tolerance * base["median"] - spread
    if cur["median"] < threshold:
        return "REGRESSED", threshold
    if cur["median"] > base["q3"] + tolerance * base["median"] + spread:
        return "improved", threshold
    return "ok", threshold


def compare(baseline: dict, current: dict, tolerance: float = TOLERANCE) -> list[dict]:
    """One row per ratio in both runs: names, both summaries, the threshold and the verdict."""
    base, cur = ratios(baseline), ratios(current)
    rows = []
    for key in sorted(base.keys() & cur.keys()):
        b, c = base[key], cur[key]
        result, threshold = verdict(b, c, tolerance)
        rows.append(
            {"benchmark": key[0], "metric": key[1], "baseline": b, "current": c}
            | {"threshold": threshold, "verdict": result}
        )
    return rows


def kind(data: dict) -> tuple:
    """Runs comparable by default: same mode, same number of busy processes we started."""
    noise = data.get("noise") if isinstance(data.get("noise"), dict) else {}
    return data.get("mode", "full"), noise.get("competing_processes", 0)


def _medians(data: dict) -> list:
    return [b.get("stats", {}).get("median") for b in data["benchmarks"] if isinstance(b, dict)]


def stored(history: Path) -> list[tuple[Path, dict]]:
    """Every pytest-benchmark file under ``history`` (any depth), sorted by path."""
    found = []
    for path in sorted(Path(history).rglob("*.json")) if Path(history).is_dir() else []:
        try:
            found.append((path, load(path)))
        except ValueError:
            continue
    return found


def default_baseline(history: Path, current: dict, current_path: Path) -> Path | None:
    """The newest stored run other than the current one (which nox also stores), same kind."""
    candidates = []
    for path, data in stored(history):
        other = path.resolve() != current_path.resolve() and _medians(data) != _medians(current)
        if other and kind(data) == kind(current):
            candidates.append((str(data.get("datetime") or ""), path))
    return max(candidates)[1] if candidates else None
