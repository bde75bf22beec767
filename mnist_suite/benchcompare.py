"""Paired benchmark ratios of two runs and their verdicts: the one place that logic lives.

Also what one file's benchmarks say by themselves: the ratios a file does not carry, from its
medians (:func:`median_ratios`), and each target's verdict (:func:`target_row`), written by
``bench/conftest.py`` and read back by the report.

Used by ``bench/compare.py`` (the ``bench_compare`` nox session), ``mnist-suite compare`` and
the report's benchmark history. Needs only the standard library and this package's file
reader, so ``bench/compare.py`` runs from any Python with NumPy.

Compares ratios, never raw times (a ratio's two sides are measured in alternation, so the
machine's load mostly cancels): every ``extra_info["ratios"][metric]`` (fraction of the GEMM
ceiling, speed-ups; higher is better) present in both files. A ratio is **worse** when the
current median falls below the baseline's lower quartile by more than its own noise allows:

    current median < baseline q1 - tolerance · baseline median - (current q3 - current q1) / 2

so a wide current spread (a noisy run) needs a larger drop to count; **better** mirrors it
above the upper quartile; **unstable** when either side's interquartile range exceeds
:data:`UNSTABLE_SPREAD` of its median (too noisy to compare). ``tolerance`` is the minimum
effect on a ratio.

What a ratio means is versioned (:data:`DEFINITION`, :data:`DEFINITIONS`): two runs measured
under different definitions are not compared at all, nor are runs measured on different CPU
models: the ceiling is that CPU's own GEMM, and how close a small kernel gets to it depends on
the CPU (its caches, its vector units), so the same code gives another fraction on another CPU.
A fraction of the ceiling above
:data:`CEILING_LIMIT` is impossible by definition: such a row is a definition error, not a
result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mnist_suite import verdicts
from mnist_suite.files import read_bounded

TOLERANCE = 0.05  # of the baseline median, beyond the quartiles and the current spread
QUARTILES = ("median", "q1", "q3")
MAX_BYTES = 64 << 20  # a benchmark file holds per-round lists: a few MB at most
# A ratio whose interquartile range exceeds this share of its median is too noisy to compare.
UNSTABLE_SPREAD = 0.5
# A kernel cannot beat the GEMM it is measured against by more than timing noise.
CEILING_LIMIT = 1.05

# Versions of what the stored ratios mean; a file says its version in ``ratio_definition``
# (files written before that field are recognised by their shape, see :func:`definition`).
DEFINITION = 2
DEFINITIONS = {
    1: "kernel rounds of fixed length, each reference timed once per round",
    2: "each round's kernel block lasts as long as its reference (short references repeated); "
    "the ceiling is a float32 1024³ GEMM with the kernel's BLAS threads",
}


def median_ratios(
    gflop_per_s: float | None,
    ceiling_gflop_per_s: float | None,
    median: float | None,
    baseline_median: float | None,
) -> tuple[float | None, float | None]:
    """(fraction of the GEMM ceiling, speed-up over the baseline) from one file's medians, for
    a benchmark without paired ratios; None where a side is missing."""
    fraction = gflop_per_s / ceiling_gflop_per_s if gflop_per_s and ceiling_gflop_per_s else None
    speedup = baseline_median / median if baseline_median and median else None
    return fraction, speedup


def target_row(benchmark: str, metric: str, goal: float, extra: dict) -> dict:
    """A target's verdict (:func:`mnist_suite.verdicts.target`) for the benchmark whose
    ``extra_info`` is ``extra``: its paired ratio's quartiles when it has them, else the value."""
    ratio = extra.get("ratios", {}).get(metric)
    value = extra.get(metric)
    outcome = verdicts.target(ratio, value, goal)
    return {
        "benchmark": benchmark,
        "metric": metric,
        "value": value,
        "q1": ratio and ratio["q1"],
        "q3": ratio and ratio["q3"],
        "target": goal,
        "verdict": outcome,
        "met": {verdicts.MET: True, verdicts.MISSED: False}.get(outcome),
    }


def load(path: Path) -> dict:
    """A pytest-benchmark JSON file as a dict; ValueError naming the file if it is not one."""
    try:
        raw = read_bounded(Path(path), MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES >> 20} MB")
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({str(exc)[:80]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: no 'benchmarks' list; not a pytest-benchmark file")
    return data


def definition(data: dict) -> int:
    """The version of the ratio definition a run was measured under.

    The file's ``ratio_definition``; a file without it is version 2 when its benchmarks record
    ``reference_calls_per_round`` (references repeated to the kernel's block), else version 1.
    """
    stated = data.get("ratio_definition")
    if isinstance(stated, int) and not isinstance(stated, bool):
        return stated
    for bench in data.get("benchmarks") or []:
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        if isinstance(extra, dict) and "reference_calls_per_round" in extra:
            return 2
    return 1


def cpu(data: dict) -> str:
    """The CPU model a run was measured on, as pytest-benchmark recorded it ("" if unknown)."""
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    info = machine.get("cpu") if isinstance(machine.get("cpu"), dict) else {}
    return str(info.get("brand_raw") or "")


def comparable(base: dict, current: dict, base_name: str, current_name: str) -> None:
    """ValueError (one line naming both) when the two runs' ratios mean different things:
    other ratio definitions, or other CPU models (a run without one is taken as it comes)."""
    a, b = definition(base), definition(current)
    if a != b:
        raise ValueError(
            f"not comparable: {base_name} has ratio definition {a}, {current_name} has "
            f"definition {b} (a ratio means something else in each)"
        )
    a, b = cpu(base), cpu(current)
    if a and b and a != b:
        raise ValueError(
            f"not comparable: other CPU: {base_name} was measured on {a}, {current_name} on "
            f"{b} (a fraction of the CPU's own GEMM ceiling differs from CPU to CPU)"
        )


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


def _unstable(r: dict) -> bool:
    return r["q3"] - r["q1"] > UNSTABLE_SPREAD * abs(r["median"])


def verdict(base: dict, cur: dict, tolerance: float = TOLERANCE, metric: str = "") -> tuple:
    """(verdict, the regression threshold) of one ratio, in :mod:`~mnist_suite.verdicts`' words:
    ``definition error``, ``unstable``, ``worse``, ``better`` or ``no detectable change``."""
    spread = (cur["q3"] - cur["q1"]) / 2
    threshold = base["q1"] - tolerance * base["median"] - spread
    if metric == "fraction_of_ceiling" and max(base["median"], cur["median"]) > CEILING_LIMIT:
        return verdicts.DEFINITION_ERROR, threshold
    if _unstable(base) or _unstable(cur):
        return verdicts.UNSTABLE, threshold
    if cur["median"] < threshold:
        return verdicts.WORSE, threshold
    if cur["median"] > base["q3"] + tolerance * base["median"] + spread:
        return verdicts.BETTER, threshold
    return verdicts.SAME, threshold


def compare(baseline: dict, current: dict, tolerance: float = TOLERANCE) -> list[dict]:
    """One row per ratio in both runs: names, both summaries, the threshold and the verdict.

    The caller checks :func:`comparable` first (it names the files)."""
    base, cur = ratios(baseline), ratios(current)
    rows = []
    for key in sorted(base.keys() & cur.keys()):
        b, c = base[key], cur[key]
        result, threshold = verdict(b, c, tolerance, key[1])
        rows.append(
            {"benchmark": key[0], "metric": key[1], "baseline": b, "current": c}
            | {"threshold": threshold, "verdict": result}
        )
    return rows


def kind(data: dict) -> tuple:
    """Runs comparable by default: same ratio definition, same number of busy processes, same
    CPU model."""
    noise = data.get("noise") if isinstance(data.get("noise"), dict) else {}
    return definition(data), noise.get("competing_processes", 0), cpu(data)


def describe_kind(data: dict) -> str:
    """:func:`kind` in words, for "no stored run of this kind"."""
    definition_, busy, model = kind(data)
    return f"ratio definition {definition_}, {busy} busy processes, CPU {model or 'unknown'}"


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
    """The newest stored run other than the current one (which nox also stores) of the same
    kind (:func:`kind`), of the same mode (quick/full) when there is one, else of the other:
    both modes measure the same ratios, quick ones over fewer rounds."""
    mode = current.get("mode", "full")
    candidates = []
    for path, data in stored(history):
        other = path.resolve() != current_path.resolve() and _medians(data) != _medians(current)
        if other and kind(data) == kind(current):
            same_mode = data.get("mode", "full") == mode
            candidates.append((same_mode, str(data.get("datetime") or ""), path))
    return max(candidates)[2] if candidates else None
