"""Paired benchmark ratios of two runs and their verdicts: the one place that logic lives.

Also what one file's benchmarks say by themselves: the ratios a file does not carry, from its
medians (:func:`median_ratios`), and each target's verdict (:func:`target_row`), written by
``bench/conftest.py`` and read back by the report.

Used by ``bench/compare.py`` (the ``bench_compare`` nox session), ``mnist-suite compare`` and
the report's benchmark history. Needs only the standard library, this package's file reader
and machine identities, so ``bench/compare.py`` runs from any Python with NumPy.

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
under different definitions are not compared at all, nor are runs measured on different machine
kinds (:mod:`mnist_suite.envinfo`: CPU vendor, family, model, stepping, flags, cores, memory; the
host is not compared): the ceiling is that CPU's own GEMM, and how close a small kernel gets to
it depends on the CPU (its caches, its vector units), so the same code gives another fraction on
another CPU, while the host adds nothing a ratio measured in alternation does not cancel. A run
that records no identity of its own is known by pytest-benchmark's CPU record (vendor, family,
model, stepping, cores), compared on those fields alone with a note; one without either is
comparable with nothing. A fraction of the ceiling above
:data:`CEILING_LIMIT` is impossible by definition: such a row is a definition error, not a
result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mnist_suite import envinfo, verdicts
from mnist_suite.files import read_bounded

TOLERANCE = 0.05  # of the baseline median, beyond the quartiles and the current spread
QUARTILES = ("median", "q1", "q3")
MAX_BYTES = 64 << 20  # a benchmark file holds per-round lists: a few MB at most
# A ratio whose interquartile range exceeds this share of its median is too noisy to compare.
UNSTABLE_SPREAD = 0.5
# A kernel cannot beat the GEMM it is measured against by more than timing noise.
CEILING_LIMIT = 1.05
# pytest-benchmark's names (py-cpuinfo's, in ``machine_info.cpu``) of the identity fields it
# records: what a run without an identity of its own is known by. Its flags are named otherwise
# than the kernel's (rdrnd, rdrand), so they do not compare with an identity's digest.
CPUINFO_FIELDS = {
    "vendor": "vendor_id_raw",
    "family": "family",
    "model": "model",
    "stepping": "stepping",
    "cores": "count",
}

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


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def cpu(data: dict) -> str:
    """The CPU's brand string as pytest-benchmark recorded it ("" if unknown): a name for
    people, not an identity (on virtual machines it is generic)."""
    return str(_dict(_dict(data.get("machine_info")).get("cpu")).get("brand_raw") or "")


def identity(data: dict) -> dict[str, str] | None:
    """The machine kind a run was measured on: its own identity without the host, else the
    fields of :data:`CPUINFO_FIELDS` pytest-benchmark recorded, else None."""
    machine = _dict(data.get("machine_info"))
    own = envinfo.identity_of(machine.get("identity"))
    if own is not None:
        return {name: own[name] for name in envinfo.KIND}
    recorded = _dict(machine.get("cpu"))
    return envinfo.identity_of(
        {name: recorded.get(key) for name, key in CPUINFO_FIELDS.items()}, tuple(CPUINFO_FIELDS)
    )


def describe_machine(data: dict) -> str:
    """The machine kind of :func:`identity` in words."""
    found = identity(data)
    return envinfo.describe(found) if found else "no machine identity"


def machine_problem(base: dict, current: dict, base_name: str, current_name: str) -> str:
    """Why two runs were not measured on the same machine kind ("" when they were), compared on
    the identity fields both record."""
    a, b = identity(base), identity(current)
    for name, found in ((base_name, a), (current_name, b)):
        if found is None:
            return f"{name} records no machine identity"
    differ = envinfo.differences(a, b, tuple(f for f in envinfo.KIND if f in a and f in b))
    if differ:
        return (
            f"other machine kinds: {base_name} was measured on {envinfo.describe(a)}, "
            f"{current_name} on {envinfo.describe(b)}; they differ in {', '.join(differ)} (a "
            "fraction of the CPU's own GEMM ceiling differs from CPU to CPU)"
        )
    return ""


def kind_note(base: dict, current: dict, base_name: str, current_name: str) -> str:
    """One line when two runs of one machine kind were compared on fewer fields than an identity
    holds ("" otherwise)."""
    partial = [
        name
        for name, data in ((base_name, base), (current_name, current))
        if set(identity(data) or envinfo.KIND) != set(envinfo.KIND)
    ]
    if not partial:
        return ""
    which = "both runs record" if len(partial) == 2 else f"{partial[0]} records"
    return (
        f"note: {which} pytest-benchmark's CPU fields, no machine identity: machine kinds "
        "compared by vendor, family, model, stepping and cores (not flags or memory)"
    )


def comparable(base: dict, current: dict, base_name: str, current_name: str) -> str:
    """ValueError (one line naming both) when the two runs' ratios mean different things:
    other ratio definitions, other machine kinds, or a run with no machine identity; else the
    note of :func:`kind_note` ("" when none)."""
    a, b = definition(base), definition(current)
    if a != b:
        raise ValueError(
            f"not comparable: {base_name} has ratio definition {a}, {current_name} has "
            f"definition {b} (a ratio means something else in each)"
        )
    why = machine_problem(base, current, base_name, current_name)
    if why:
        raise ValueError(f"not comparable: {why}")
    return kind_note(base, current, base_name, current_name)


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
    ``definition error``, ``unstable``, ``worse``, ``better`` or ``no detectable change``.

    Never ``equivalent``: a median inside the band (the baseline's quartiles widened by the
    tolerance and half the current spread) bounds no change. A baseline whose quartiles span
    40% of its median (still stable) leaves a 25% drop undetected; equivalence would need an
    interval of the change inside a margin, which quartiles of two files do not give."""
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
    return verdicts.NOT_DETECTED, threshold


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


def conditions(data: dict) -> tuple:
    """What two runs must share besides their machine kind to be compared by default: the
    ratio definition and the number of busy processes started (``--load``)."""
    noise = _dict(data.get("noise"))
    return definition(data), noise.get("competing_processes", 0)


def describe_kind(data: dict) -> str:
    """:func:`conditions` and the machine kind in words, for "no stored run of this kind"."""
    definition_, busy = conditions(data)
    return f"ratio definition {definition_}, {busy} busy processes, {describe_machine(data)}"


def same_kind(data: dict, current: dict) -> bool:
    """Whether a stored run is of the current one's kind: its :func:`conditions` and machine
    kind."""
    return conditions(data) == conditions(current) and not machine_problem(data, current, "", "")


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
    kind (:func:`conditions`, machine kind), of the same mode (quick/full) when there is one,
    else of the other: both modes measure the same ratios, quick ones over fewer rounds."""
    mode = current.get("mode", "full")
    candidates = []
    for path, data in stored(history):
        other = path.resolve() != current_path.resolve() and _medians(data) != _medians(current)
        if other and same_kind(data, current):
            same_mode = data.get("mode", "full") == mode
            candidates.append((same_mode, str(data.get("datetime") or ""), path))
    return max(candidates)[2] if candidates else None


def stored_copy(history: Path, current: dict) -> Path | None:
    """The stored copy nox keeps of the current run (the same figures, the same kind), when
    ``history`` holds one: a run with no other of its kind stored is the first of its kind."""
    for path, data in stored(history):
        if _medians(data) == _medians(current) and same_kind(data, current):
            return path
    return None
