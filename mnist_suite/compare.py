"""``mnist-suite compare BASE NEW``: did a change help, beyond noise?

Each side is a runs folder, a report's ``results.json`` (or a baseline saved with
``runs --summary --json``: the same ``summaries`` shape, schema version 2 or 3), or benchmark
results (a pytest-benchmark JSON file, or a folder of them: its newest run). For every job,
cell, profile and compared metric: n and mean ± 95% CI of each side, the difference NEW − BASE
with its interval, and a verdict (words of :mod:`mnist_suite.verdicts`):

- the interval is **paired** by seed on the seeds both sides hold per-seed values of, when
  there are two or more (the interval of the per-seed differences: with deterministic seeds
  that is the change's effect alone, and identical sides give exactly 0; a gate's four seeds
  pair with the same four of a ten-seed baseline); **Welch**'s unpaired interval otherwise
  (a schema 2 baseline holds no per-seed values: a note says so). The table says which, and
  how many pairs;
- ``better`` / ``worse``: the difference is significant **within its family** (Holm's rule
  over the family's rows, so the chance of any false better/worse in a family stays at
  1 − confidence) **and** at least the metric's minimum effect (:data:`RULES`), in its good or
  bad direction. Each row shows its Holm-adjusted p-value and an interval **simultaneous**
  over its family (Bonferroni: each at 1 − (1 − confidence)/m for a family of m rows): an
  interval that excludes zero always has a significant p;
- ``equivalent``: not better or worse, and that simultaneous interval lies strictly inside
  ± the metric's equivalence margin (:data:`RULES`; the minimum effect unless ``--margin``
  says otherwise): two one-sided tests, each at (1 − confidence)/(2m);
- ``inconclusive``: neither: the interval is too wide to tell. Its note estimates how many
  seeds would likely decide it (:func:`mnist_suite.stats.seeds_to_decide`);
- ``identical``: every seed of one side is a seed of the other with the same figure (the same
  runs, or the same code and config run again): nothing to test, so the row joins no family;
- rows the comparison cannot judge or see through, each failing ``--fail-on worse``:
  ``too few seeds`` (a side with fewer than two runs, or two seeds with no spread at all),
  ``missing`` (a job, cell or metric on one side only), ``diverged`` (some or all seeds of a
  side diverged or failed), ``outdated`` (NEW holds finished runs of other code than this
  source's), and a benchmark ratio ``unstable`` or in ``definition error``.

The families (:data:`FAMILIES`) are fixed by what a row measures and whether it can differ,
before any figure is tested: accuracy and loss rows, speed rows (``train_seconds``), and
benchmark ratios (judged by their quartiles, no test: better, worse or ``no detectable change``,
never equivalent, :func:`mnist_suite.benchcompare.verdict`). Rows that cannot differ (identical) or
cannot be judged do not dilute a family: 33 identical rows beside one changed job leave that
job a family of one.

Speed is judged on ``train_seconds`` (the training clock without one-time process warm-up),
and only when the runs it compares (the paired seeds, else every seed) ran on one and the same
machine (:func:`mnist_suite.envinfo.machine_identity`, host included), in a container on both
sides or on neither, at a comparable load (median 1-minute load averages within
:data:`LOAD_TOLERANCE`); otherwise the table says "speed not comparable: <reason>" under it, and
a record without a machine identity is never comparable. Asked to fail on ``train_seconds``
(``--fail-metric``), compare refuses sides from other machines in one line (exit 2): no
verdict can come of them. Accuracy verdicts are unaffected.

Each metric's direction, range, printed unit, minimum effect and margin come from one table,
:mod:`mnist_suite.meanings` (why these sizes: there); compare judges the metrics it gives a
rule (:data:`RULES`: test accuracy, MSE, loss and ``train_seconds``).
Benchmark ratios are compared by :mod:`mnist_suite.benchcompare` (paired in alternation, so load
cancels; its tolerance is the minimum effect) and join the same table; runs measured under
different ratio definitions are refused.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import types
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mnist_suite import benchcompare, envinfo, verdicts
from mnist_suite.errors import ConfigError
from mnist_suite.meanings import LARGEST, RULES, Rule, meaning
from mnist_suite.options import option
from mnist_suite.stats import (
    CONFIDENCE,
    DECIDE_CAP,
    ROUNDING,
    Difference,
    difference,
    holm,
    holm_adjusted,
    paired_seeds,
    seeds_to_decide,
    summarize,
    t_interval,
)
from mnist_suite.text import code_span
from mnist_suite.verdicts import (
    BETTER,
    DECIDED,
    DIVERGED,
    EQUIVALENT,
    FEW,
    IDENTICAL,
    INCONCLUSIVE,
    MISSING,
    NOT_DETECTED,
    NOT_WORSE,
    OUTDATED,
    WORSE,
)

SPEED_METRIC = "train_seconds"
# Loads (1-minute averages, in busy processes) this close count as comparable for speed.
LOAD_TOLERANCE = 0.5
MAX_SEEDS = 1_000_000
MAX_BYTES = 256 << 20  # a report's results.json of thousands of runs stays far below
# The families of rows judged together, each under its own Holm's rule (benchmark ratios are
# judged by their quartiles, one by one: they join no test).
QUALITY, SPEED, BENCHMARK = "accuracy and loss", "speed", "benchmark ratios"
FAMILIES = (QUALITY, SPEED, BENCHMARK)
# Verdicts of rows the comparison could judge (every other row fails ``--fail-on worse``).
JUDGED = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, IDENTICAL, NOT_DETECTED)
# A stored interval or sd this close to the one its figures give is the same number printed.
STORED_TOLERANCE = 1e-6
# The baseline schemas compare reads: 3 holds per-seed values (paired tests, speed verdicts).
SCHEMAS = (2, 3)


@dataclass(frozen=True)
class Stat:
    """One side's figure: n, mean, sample sd over seeds (sd None for n < 2), the per-seed
    values when the side holds them, and how many of the group's runs diverged or failed; a
    clock's also the load at each run's start and the identity of the machine it ran on
    (:func:`mnist_suite.envinfo.identity_of`; None for a run that records none)."""

    n: int
    mean: float | None
    sd: float | None
    values: dict[int, float] | None = None
    diverged: int = 0
    loads: dict[int, float | None] | None = None
    identities: dict[int, dict[str, str] | None] | None = None

    def half_width(self) -> float | None:
        """Half the Student-t 95% interval of the mean, or None."""
        if self.mean is None:
            return None
        interval = t_interval(self.mean, self.sd, self.n)
        return None if interval is None else (interval[1] - interval[0]) / 2


@dataclass(frozen=True)
class CompareOptions:
    """How ``compare`` shows its table and when it fails (each field one argument)."""

    md: bool = option(False, "a markdown table", exclusive="format")
    json: bool = option(False, "JSON", exclusive="format")
    fail_on: str | None = option(None, "exit 1 if any figure got worse", choices=("worse",))
    require: str | None = option(
        None, "exit 1 unless every run row is equivalent, identical or better",
        choices=("equivalent",),
    )  # fmt: skip
    fail_metric: tuple[str, ...] = option(
        (), "with --fail-on or --require: only these metrics fail (repeatable; default every "
        "metric); a metric no row judges fails", metavar="METRIC",
    )  # fmt: skip
    min_effect: tuple[str, ...] = option(
        (), "a metric's minimum effect: absolute (test_accuracy=0.005) or relative "
        "(train_seconds=50%%); repeatable", metavar="METRIC=X",
    )  # fmt: skip
    margin: tuple[str, ...] = option(
        (), "a metric's equivalence margin, as --min-effect (default: its minimum effect); "
        "repeatable", metavar="METRIC=X",
    )  # fmt: skip
    confidence: float = option(
        CONFIDENCE, "simultaneous coverage of a family's intervals, 1 − its false-alarm rate "
        "(default 0.95; a CI gate may ask 0.99)",
    )  # fmt: skip

    def rules(self) -> dict[str, Rule]:
        """The rules these options ask for, checked (:func:`rules_for`)."""
        return rules_for(
            list(self.min_effect), list(self.fail_metric), self.confidence, list(self.margin)
        )


@dataclass
class Side:
    """What one argument of ``compare`` holds."""

    label: str
    kind: str  # runs | results | bench
    stats: dict[tuple[str, str, str, str], Stat] = field(default_factory=dict)
    configs: dict[tuple[str, str, str], list[dict]] = field(default_factory=dict)
    fingerprints: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    machines: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    outdated: dict[tuple[str, str, str], int] = field(default_factory=dict)
    ratios: dict[tuple[str, str], dict] = field(default_factory=dict)
    bench: dict | None = None  # the benchmark file, for its ratio definition
    notes: list[str] = field(default_factory=list)  # one line each, shown above the table

    def groups(self) -> set[tuple[str, str, str]]:
        return {key[:3] for key in self.stats}


# --- reading a side ---------------------------------------------------------------------------


def side_of_runs(label: str, records: list, current=None) -> Side:
    """A side from run records (:class:`~mnist_suite.runs.RunRecord`) already read.

    ``current`` maps a job name to this source's fingerprint of it (None: not checked); finished
    runs of other code are counted per group as outdated.
    """
    from mnist_suite.summary import summaries

    side = _from_summaries(Side(label, "runs"), summaries(records), checked=False)
    for run in records if current else []:
        if run.state == "done" and run.code_state(current(run.job)) not in ("current", "unknown"):
            group = (run.job, run.cell, run.profile)
            side.outdated[group] = side.outdated.get(group, 0) + 1
    return side


def _number(
    row: dict, name: str, where: str, low: float = -LARGEST, high: float = LARGEST
) -> float | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"{where}: {name} {str(value)[:40]!r} is not a number")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{where}: {name} {value!r} out of range [{low:g}, {high:g}]")
    return float(value)


def _check_row(row: Any, label: str, i: int) -> tuple[tuple, Stat]:
    """One summary row of a file, validated like a run record: one-line ConfigError if not."""
    where = f"{label}: summary {i + 1}"
    if not isinstance(row, dict):
        raise ConfigError(f"{where} is not an object")
    names = {}
    for name in ("job", "profile", "metric"):
        if not isinstance(row.get(name), str) or not row[name]:
            raise ConfigError(f"{where}: no {name} (text)")
        names[name] = row[name]
    cell = row.get("cell") or ""
    if not isinstance(cell, str):
        raise ConfigError(f"{where}: cell is not text")
    where = f"{label}: {names['job']}{'/' + cell if cell else ''} {names['metric']}"
    n, diverged = row.get("n"), row.get("diverged", 0)
    for name, value in (("n", n), ("diverged", diverged)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEEDS:
            raise ConfigError(f"{where}: {name} {str(value)[:40]!r} is not a count of runs")
    metric = meaning(names["metric"])
    mean = _number(row, "mean", where, metric.low, metric.high)
    sd = _number(row, "sd", where, 0.0)
    if (n >= 1 and mean is None) or (n >= 2 and sd is None):
        raise ConfigError(f"{where}: n = {n} needs a mean" + (" and an sd" if n >= 2 else ""))
    if n == 0 and diverged == 0:
        raise ConfigError(f"{where}: n = 0 and no diverged run: an empty summary")
    values = _seed_values(row, n, where, metric.low, metric.high)
    if values is not None:
        # What compare uses (the mean, the sd, the pairs) must be what the values say.
        own = summarize(values.values())
        if n and abs(own.mean - mean) > 1e-9 * max(1.0, abs(mean)):
            raise ConfigError(f"{where}: mean {mean!r} is not the mean of its values")
        if n >= 2 and not _close(sd, own.sd, mean):
            raise ConfigError(f"{where}: sd {sd!r} is not the sd of its values")
    _check_interval(row, n, mean, sd, where)
    loads, identities = _seed_where(row, n, where)
    key = (names["job"], cell, names["profile"], metric.name)
    return key, Stat(n, mean, sd, values, diverged, loads, identities)


def _seed_where(row: dict, n: int, where: str) -> tuple[dict | None, dict | None]:
    """A clock row's per-seed loads and machine identities by seed (None when it lists none):
    n of each beside n seeds, a load a number of busy processes or null, an identity an object
    or null (an incomplete one counts as none)."""
    loads, identities = row.get("loads"), row.get("identities")
    if loads is None and identities is None:
        return None, None
    seeds = row.get("seeds")
    for name, listed in (("loads", loads), ("identities", identities)):
        if not isinstance(listed, list) or not isinstance(seeds, list) or len(listed) != n:
            raise ConfigError(f"{where}: {name}: expected n = {n} beside n seeds")
    probe: dict[str, Any] = {}
    for load in loads:
        probe["load"] = load
        _number(probe, "load", where, 0.0)
    if any(i is not None and not isinstance(i, dict) for i in identities):
        raise ConfigError(f"{where}: identities: expected an object or null per seed")
    return (
        dict(zip(seeds, loads, strict=True)),
        dict(zip(seeds, map(envinfo.identity_of, identities), strict=True)),
    )


def _seed_values(row: dict, n: int, where: str, low: float, high: float) -> dict[int, float] | None:
    """A row's per-seed values by seed (None when it lists none), its seeds checked: n
    integers, none twice, even beside no values (a seed counted twice is not two runs)."""
    seeds, listed = row.get("seeds"), row.get("values")
    if seeds is None:
        if listed is not None:
            raise ConfigError(f"{where}: values need n seeds beside them")
        return None
    integers = isinstance(seeds, list) and all(
        isinstance(s, int) and not isinstance(s, bool) for s in seeds
    )
    if not integers or len(seeds) != n:
        raise ConfigError(f"{where}: seeds: expected a list of n = {n} integers")
    twice = [seed for seed, count in Counter(seeds).items() if count > 1]
    if twice:
        raise ConfigError(f"{where}: seed {min(twice)} listed twice")
    if listed is None:
        return None
    if not isinstance(listed, list) or len(listed) != n:
        raise ConfigError(f"{where}: n values and n integer seeds expected")
    probe = {"v": 0.0}
    for v in listed:
        probe["v"] = v
        _number(probe, "v", where + " values", low, high)
    return dict(zip(seeds, map(float, listed), strict=True))


def _close(stored: float | None, own: float | None, mean: float) -> bool:
    """A stored figure equals the one recomputed, up to printing and summation order."""
    if stored is None or own is None:
        return stored is own
    scale = max(abs(stored), abs(own))
    return abs(stored - own) <= STORED_TOLERANCE * scale + ROUNDING * abs(mean)


def _check_interval(row: dict, n: int, mean: float | None, sd: float | None, where: str):
    """A stored interval (optional) holds its mean and is the 95% Student-t interval of its n,
    mean and sd: ConfigError (one line) otherwise."""
    low, high = _number(row, "ci_low", where), _number(row, "ci_high", where)
    if low is None and high is None:
        return
    if low is None or high is None or n < 2 or mean is None:
        raise ConfigError(f"{where}: an interval needs both ends and n >= 2 (n = {n})")
    if not low <= mean <= high:
        raise ConfigError(f"{where}: mean {mean!r} outside its interval [{low!r}, {high!r}]")
    own = t_interval(mean, sd, n)
    if not (_close(low, own[0], mean) and _close(high, own[1], mean)):
        raise ConfigError(
            f"{where}: interval [{low!r}, {high!r}] is not the 95% interval of n = {n}, "
            f"mean {mean!r}, sd {sd!r}"
        )


def _from_summaries(side: Side, rows: list, checked: bool = True) -> Side:
    """Summary rows into a side; a file's rows (``checked``) are validated, and a key (job,
    cell, profile, metric) given twice is an error, not a choice."""
    for i, row in enumerate(rows):
        key, stat = _check_row(row, side.label, i)
        if key in side.stats:
            if checked:
                raise ConfigError(f"{side.label}: {_key_name(key)} summarised twice")
            # Runs of one group under several configs: keep the one with most seeds.
            if side.stats[key].n >= stat.n:
                continue
        side.stats[key] = stat
        group = key[:3]
        if isinstance(row.get("configs"), list):
            side.configs.setdefault(group, [c for c in row["configs"] if isinstance(c, dict)])
        if isinstance(row.get("fingerprints"), list):
            side.fingerprints.setdefault(group, [str(f) for f in row["fingerprints"]])
        if isinstance(row.get("machine"), dict):
            side.machines.setdefault(group, row["machine"])
    return side


def _key_name(key: tuple) -> str:
    job, cell, profile, metric = key
    return f"{job}{'/' + cell if cell else ''} {profile} {metric}"


def _results_runs(side: Side, doc: dict) -> Side:
    """A ``results.json``'s ``runs`` list, summarised here (per-seed values: paired intervals)."""
    from mnist_suite.runs import RunRecord
    from mnist_suite.summary import summaries

    records = []
    for run in doc.get("runs") or []:
        if isinstance(run, dict) and isinstance(run.get("metrics"), dict):
            cfg = {k: run.get(k) for k in ("job", "cell", "profile", "seed", "config")}
            if not all(isinstance(cfg[k], str) for k in ("job", "profile")):
                continue
            records.append(
                RunRecord(
                    Path(cfg["job"]) / str(run.get("run_id")),
                    str(run.get("state")),
                    config_file={k: v for k, v in cfg.items() if v is not None},
                    metrics=run["metrics"],
                )
            )
    try:
        rows = summaries(records)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{side.label}: runs with unusable figures ({str(exc)[:60]})") from None
    return _from_summaries(side, rows, checked=False)


def _newest_bench(folder: Path) -> tuple[Path, dict] | None:
    found = benchcompare.stored(folder)
    if not found:
        return None
    return max(found, key=lambda pd: (str(pd[1].get("datetime") or ""), str(pd[0])))


def _read_json(path: Path) -> Any:
    from mnist_suite.files import read_bounded

    try:
        raw = read_bounded(path, MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES >> 20} MB")
        return json.loads(raw)
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({str(exc)[:60]})") from None


def load_side(path: Path) -> Side:
    """Read one side of ``compare``; ConfigError (one line) for anything that is not one."""
    from mnist_suite.fingerprint import for_job_name
    from mnist_suite.runs import newest_code, scan

    path = Path(path)
    label = str(path)
    if path.is_dir():
        # Runs that cannot be read or do not fit (corrupt, unreadable) have no figures to give.
        runs = [r for r in scan(path) if r.readable]
        if runs:
            # Each job at its newest code: a folder holds every version side by side.
            records, left_out = newest_code(runs)
            if left_out:
                label += f" (newest code of each job; {left_out} older runs left out)"
            return side_of_runs(label, records, for_job_name)
        if (path / "results.json").is_file():
            return load_side(path / "results.json")
        newest = _newest_bench(path)
        if newest is not None:
            bench_path, data = newest
            return Side(str(bench_path), "bench", ratios=benchcompare.ratios(data), bench=data)
        raise ConfigError(
            f"{path}: holds no runs, no results.json and no benchmark JSON to compare"
        )
    if not path.exists():
        raise ConfigError(f"{path}: no such file or folder")
    doc = _read_json(path)
    if isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list):
        return Side(label, "bench", ratios=benchcompare.ratios(doc), bench=doc)
    if isinstance(doc, dict) and isinstance(doc.get("runs"), list) and doc["runs"]:
        return _results_runs(Side(label, "results"), doc)
    if isinstance(doc, dict) and isinstance(doc.get("summaries"), list):
        schema = doc.get("schema_version", SCHEMAS[-1])
        if schema not in SCHEMAS or isinstance(schema, bool):
            raise ConfigError(
                f"{path}: schema_version {repr(schema)[:20]}: compare reads "
                f"{' and '.join(map(str, SCHEMAS))}"
            )
        side = _from_summaries(Side(label, "results"), doc["summaries"])
        if schema == 2:
            note = f"note: {label} is schema 2 (no per-seed values): unpaired Welch test"
            side.notes.append(note)
        return side
    raise ConfigError(
        f"{path}: neither a report's results.json, a summary baseline nor benchmark results"
    )


# --- comparing --------------------------------------------------------------------------------


def _config_diff(base: list[dict], new: list[dict]) -> str:
    """``key: a -> b`` for config fields that differ between the sides' (single) configs."""
    if not base or not new:
        return ""
    if len(base) > 1 or len(new) > 1:
        return "several configs on one side"
    a, b = base[0], new[0]
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)} -> {b.get(k)}" for k in keys)


def _speed_runs(side: str, stat: Stat, seeds: list[int] | None) -> tuple[dict | None, str]:
    """The one machine identity of a side's timed runs (those of ``seeds``, else all), or why
    there is none."""
    found = [(stat.identities or {}).get(seed) for seed in (seeds or sorted(stat.identities or {}))]
    if not any(found):
        return None, f"{side} records no machine identity"
    if None in found:
        return None, f"{side} records no machine identity for some of its runs"
    distinct = {json.dumps(i, sort_keys=True) for i in found}
    if len(distinct) > 1:
        return None, f"{side} ran on {len(distinct)} machines"
    return found[0], ""


def machine_problem(base: Stat, new: Stat, inside: tuple[Any, Any] = (False, False)) -> str:
    """Why the two sides' clocks did not run on the same machine ("" when they did): the timed
    runs of each side (the paired seeds, else all) on one machine, the same on both (identity,
    host included), ``inside`` a container (each side's ``in_container``) on both or neither."""
    seeds = paired_seeds(base.values, new.values)
    (a, why_a), (b, why_b) = _speed_runs("base", base, seeds), _speed_runs("new", new, seeds)
    if why_a or why_b:
        return why_a or why_b
    if envinfo.differences(a, b):
        differ = ", ".join(envinfo.differences(a, b))
        return (
            f"other machines (base: {envinfo.describe(a)}; new: {envinfo.describe(b)}; "
            f"they differ in {differ})"
        )
    for side, flag in zip(("base", "new"), inside, strict=True):
        if not isinstance(flag, bool):
            return f"{side} does not say whether it ran in a container"
    if inside[0] != inside[1]:
        return f"in a container on {'base' if inside[0] else 'new'} only"
    return ""


def speed_comparable(base: Stat, new: Stat, inside: tuple[Any, Any] = (False, False)) -> str:
    """Why the two sides' clocks cannot be compared ("" when they can): another machine
    (:func:`machine_problem`) or another load (median 1-minute load averages of the timed runs
    more than :data:`LOAD_TOLERANCE` apart)."""
    why = machine_problem(base, new, inside)
    if why:
        return why
    seeds = paired_seeds(base.values, new.values)
    medians = []
    for side, stat in (("base", base), ("new", new)):
        loads = [(stat.loads or {}).get(seed) for seed in (seeds or sorted(stat.identities))]
        if not loads or None in loads:
            return f"{side} does not record its load"
        medians.append(statistics.median(loads))
    if abs(medians[0] - medians[1]) > LOAD_TOLERANCE:
        return f"other loads ({medians[0]:.2f} vs {medians[1]:.2f} busy processes)"
    return ""


def _inside(side: Side, group: tuple) -> Any:
    """Whether the group's runs on ``side`` ran in a container (None: mixed or not said)."""
    machine = side.machines.get(group)
    return machine.get("in_container") if isinstance(machine, dict) else None


def _row(kind: str, group: tuple, metric: str, verdict: str, **extra) -> dict:
    job, cell, profile = group
    family = BENCHMARK if kind == "benchmark" else SPEED if metric == SPEED_METRIC else QUALITY
    row = {"kind": kind, "job": job, "cell": cell, "profile": profile, "metric": metric}
    row |= {"base": None, "new": None, "diff": None, "low": None, "high": None, "level": None}
    row |= {"p_value": None, "p_adjusted": None, "method": "", "pairs": 0, "min_effect": None}
    row |= {"margin": None, "family": family, "tested": False, "verdict": verdict}
    row |= {"seeds_to_decide": None}
    return row | {"note": "", "config_changes": "", "mixed_code": []} | extra


def _side_stat(s: Stat) -> dict:
    return {"n": s.n, "mean": s.mean, "sd": s.sd, "half_width": s.half_width()}


def _judged(rule: Rule, b: Stat, n: Stat, level: float) -> tuple[dict, Difference]:
    """The row's figures with the interval at ``level``, and the difference they come from
    (its ``why`` says why it has no p-value, "" if it has one)."""
    if b.n < 2 or n.n < 2:
        why = f"{b.n} seed{'s' * (b.n != 1)} on base, {n.n} on new: an interval needs two on each"
        d = Difference(n.mean - b.mean, None, None, None, "", why=why)
    else:
        d = difference((b.n, b.mean, b.sd), (n.n, n.mean, n.sd), b.values, n.values, level)
    figures = {
        "base": _side_stat(b),
        "new": _side_stat(n),
        "diff": d.diff,
        "low": d.low,
        "high": d.high,
        "level": level if d.low is not None else None,
        "p_value": d.p_value,
        "method": d.method,
        "pairs": d.pairs,
        "min_effect": rule.min_effect(b.mean),
        "margin": rule.margin(b.mean),
    }
    return figures, d


def _identical(b: Stat, n: Stat) -> bool:
    """Every seed of one side is a seed of the other with the same figure (the same seeds, or a
    gate's four of a baseline's ten). Deterministic seeds give that only when the two sides ran
    the same computation (the same runs, or the same code and config again), never by chance:
    such a row can read nothing but identical, so it is known before any test and joins no
    family."""
    if not b.values or not n.values:
        return False
    fewer, more = sorted((b.values, n.values), key=len)
    return all(seed in more and more[seed] == value for seed, value in fewer.items())


def _identical_note(b: Stat, n: Stat) -> str:
    """What an identical row holds: the same seeds, or one side's seeds within the other's."""
    if b.values.keys() == n.values.keys():
        return "the same seeds with the same figures on both sides"
    fewer, more = ("new", "base") if len(n.values) < len(b.values) else ("base", "new")
    return f"each seed of {fewer} with the same figure on {more}"


def _run_rows(base: Side, new: Side, rules: dict[str, Rule]) -> tuple[list, list[str]]:
    """Each run row with the two sides' figures (None for a row on one side only), its verdict
    so far decided by what the sides are, not by their figures; and the speed notes."""
    pending, speed_notes = [], []
    for group in sorted(base.groups() | new.groups()):
        where = [s for s in (base, new) if group in s.groups()]
        if len(where) == 1:
            only = "base" if where[0] is base else "new"
            metrics = sorted({k[3] for k in where[0].stats if k[:3] == group} - {SPEED_METRIC})
            judged = [m for m in metrics if m in rules] or metrics[:1]
            for metric in judged:
                pending.append((_row("run", group, metric, MISSING, note=f"only on {only}"), None))
            continue
        extras = {
            "config_changes": _config_diff(base.configs.get(group, []), new.configs.get(group, [])),
            "mixed_code": [
                label
                for label, s in (("base", base), ("new", new))
                if len(s.fingerprints.get(group, [])) > 1
            ],
        }
        metrics = {k[3] for s in (base, new) for k in s.stats if k[:3] == group}
        for metric in sorted(m for m in metrics if m in rules):
            b, n = base.stats.get((*group, metric)), new.stats.get((*group, metric))
            if metric == SPEED_METRIC:
                if b is None or n is None:
                    why = f"{metric} not recorded on {'base' if b is None else 'new'}"
                else:
                    why = speed_comparable(b, n, (_inside(base, group), _inside(new, group)))
                if why:
                    speed_notes.append(why)
                    continue
            if b is None or n is None:
                note = f"only on {'new' if b is None else 'base'}"
                pending.append((_row("run", group, metric, MISSING, note=note, **extras), None))
                continue
            row = _row("run", group, metric, INCONCLUSIVE, tested=True, **extras)
            notes = [
                f"{st.diverged} of {st.n + st.diverged} seeds diverged on {label}"
                for label, st in (("base", b), ("new", n))
                if st.diverged
            ]
            if notes:
                row |= {"verdict": DIVERGED, "note": "; ".join(notes), "tested": False}
            elif new.outdated.get(group):
                count = new.outdated[group]
                note = f"{count} run{'s' * (count != 1)} on new recorded by other code"
                row |= {"verdict": OUTDATED, "note": note, "tested": False}
            elif _identical(b, n):
                note = _identical_note(b, n)
                row |= {"verdict": IDENTICAL, "note": note, "tested": False}
            elif b.n < 2 or n.n < 2:
                row |= {"verdict": FEW, "tested": False}
            pending.append((row, (b, n)))
    return pending, sorted(set(speed_notes))


def family_level(rows: list[dict], family: str, confidence: float = CONFIDENCE) -> float:
    """The level of each interval of ``family`` that makes them simultaneous at
    ``confidence`` (Bonferroni): 1 − (1 − confidence) / m for its m tested rows."""
    m = sum(r["tested"] and r["family"] == family for r in rows)
    return 1 - (1 - confidence) / max(1, m)


def _decide(pending: list, rules: dict[str, Rule], confidence: float) -> None:
    """Per family: every row's interval at the family's simultaneous level, Holm's rule over
    its tested rows (a row without a p-value counts as p = 1: the family was fixed before the
    figures), and each tested row's verdict (:func:`_outcome`)."""
    alpha, rows = 1 - confidence, [row for row, _ in pending]
    for family in (QUALITY, SPEED):
        level = family_level(rows, family, confidence)
        members = []
        for row, sides in pending:
            if row["family"] != family or sides is None or None in (sides[0].mean, sides[1].mean):
                continue
            figures, d = _judged(rules[row["metric"]], *sides, level)
            row |= figures
            if row["verdict"] == FEW and not row["note"]:
                row["note"] = d.why
            if row["tested"]:
                members.append((row, d, sides))
        p_values = [1.0 if row["p_value"] is None else row["p_value"] for row, _, _ in members]
        significant = holm(p_values, alpha)
        for (row, d, sides), adjusted, reject in zip(
            members, holm_adjusted(p_values), significant, strict=True
        ):
            if row["p_value"] is None:
                row |= {"verdict": FEW, "note": d.why}
                continue
            row["p_adjusted"] = adjusted
            _outcome(row, reject, rules[row["metric"]].higher_is_better, d, sides)


def _outcome(row: dict, reject: bool, higher_is_better: bool, d: Difference, sides) -> None:
    """A tested row's verdict: better or worse where Holm rejects "no difference" and the
    difference reaches the minimum effect; else equivalent where the row's simultaneous
    interval lies strictly inside ± the margin; else inconclusive, with the seeds that would
    likely decide it.

    Why the printed interval decides equivalence: an interval at 1 − (1 − confidence)/m
    inside (−margin, +margin) is two one-sided tests (the difference is above −margin, below
    +margin), each at (1 − confidence)/(2m). That is stricter than equivalence needs (each at
    (1 − confidence)/m would do): the price of one interval that agrees with every verdict of
    its row. Over a family's m rows, the chance of any false equivalent stays at most
    (1 − confidence)/2, and of any false better/worse at most 1 − confidence (Holm)."""
    small = abs(row["diff"]) < row["min_effect"]
    if reject and not small:
        good = (row["diff"] > 0) == higher_is_better
        row["verdict"] = BETTER if good else WORSE
        if row["low"] <= 0 <= row["high"]:
            row["note"] = (
                "Holm rejects it after the family's smaller p-values; "
                "its simultaneous interval is the wider Bonferroni one"
            )
        return
    notes = ["significant, below the minimum effect"] if reject else []
    if -row["margin"] < row["low"] and row["high"] < row["margin"]:
        row |= {"verdict": EQUIVALENT, "note": "; ".join(notes)}
        return
    b, n = sides
    if d.method == "paired":
        spread, sizes, unit = (d.sd,), (d.pairs,), "paired seeds"
    else:
        spread, sizes, unit = (b.sd, n.sd), (b.n, n.n), "seeds on each side"
    needed = seeds_to_decide(
        row["diff"], spread, sizes, row["level"], row["min_effect"], row["margin"]
    )
    if needed is not None:
        notes.append(f"about {needed} {unit} would likely decide it")
    elif row["margin"] <= abs(row["diff"]) < row["min_effect"]:
        notes.append("between the margin and the minimum effect: no number of seeds decides it")
    else:
        notes.append(f"more than {DECIDE_CAP} {unit} would be needed to decide it")
    row |= {"verdict": INCONCLUSIVE, "note": "; ".join(notes), "seeds_to_decide": needed}


def _bench_rows(base: Side, new: Side) -> list[dict]:
    if base.bench is not None and new.bench is not None:
        try:
            benchcompare.comparable(base.bench, new.bench, base.label, new.label)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    rows = []
    for key in sorted(base.ratios.keys() & new.ratios.keys()):
        b, n = base.ratios[key], new.ratios[key]
        verdict, threshold = benchcompare.verdict(b, n, metric=key[1])
        rows.append(
            _row("benchmark", (key[0].split("::")[-1], "", "bench"), key[1], verdict)
            | {
                "base": {k: b[k] for k in benchcompare.QUARTILES},
                "new": {k: n[k] for k in benchcompare.QUARTILES},
                "diff": n["median"] - b["median"],
                "min_effect": benchcompare.TOLERANCE * b["median"],
                "threshold": threshold,
            }
        )
    return rows


def compare(
    base: Side, new: Side, rules: dict[str, Rule] | None = None, confidence: float = CONFIDENCE
) -> list[dict]:
    """One row per figure with a rule (:data:`RULES`), per group on one side only, and per
    benchmark ratio. ``speed_notes(base, new)`` gives why speed rows were left out.

    ``confidence`` is the simultaneous coverage of each family's intervals and 1 − each
    family's false-alarm rate (0.95; a CI gate may ask more).
    """
    rules = rules or RULES
    pending, _ = _run_rows(base, new, rules)
    _decide(pending, rules, confidence)
    return [row for row, _ in pending] + _bench_rows(base, new)


def side_notes_of(base: Side, new: Side) -> list[str]:
    """What the sides say of themselves, one line each: a schema 2 baseline, benchmark runs
    whose machine kinds were compared on fewer fields than an identity holds."""
    found = base.notes + new.notes
    if base.bench is not None and new.bench is not None:
        note = benchcompare.kind_note(base.bench, new.bench, base.label, new.label)
        found += [note] if note else []
    return found


def speed_notes(base: Side, new: Side, rules: dict[str, Rule] | None = None) -> list[str]:
    """The reasons speed was not compared, one line each ("speed not comparable: ...")."""
    _, notes = _run_rows(base, new, rules or RULES)
    return [f"speed not comparable: {why}" for why in notes]


def check_fail_metrics(metrics: list[str], rules: dict[str, Rule] | None = None) -> None:
    """ConfigError (one line) for a fail metric no rule knows: a typo must not pass."""
    known = rules or RULES
    unknown = [
        m
        for m in metrics
        if m not in known and m != "fraction_of_ceiling" and not m.startswith("speedup_over_")
    ]
    if unknown:
        raise ConfigError(
            f"fail metric {unknown[0]!r}: not a compared metric ({', '.join(known)}, "
            "or a benchmark ratio: fraction_of_ceiling, speedup_over_*)"
        )


def regressions(rows: list[dict], metrics: list[str] | None = None) -> list[str]:
    """The rows failing ``--fail-on worse`` (of ``metrics`` only, when given), one line each:
    worse, and each row the comparison could not judge (too few seeds, missing, diverged,
    outdated, unstable, a definition error; an inconclusive row was judged and does not fail);
    and a fail metric no row judged."""
    failing = [r for r in rows if r["verdict"] in verdicts.FAILING]
    return _lines(failing, metrics) + _unjudged(rows, metrics)


def short_of_equivalent(rows: list[dict], metrics: list[str] | None = None) -> list[str]:
    """The run rows failing ``--require equivalent`` (of ``metrics`` only, when given), one
    line each: every run row not equivalent, identical or better; and a fail metric no row
    judged."""
    short = [r for r in rows if r["kind"] == "run" and r["verdict"] not in NOT_WORSE]
    return _lines(short, metrics) + _unjudged(rows, metrics)


def _lines(rows: list[dict], metrics: list[str] | None) -> list[str]:
    return [
        f"{_name(r)} {r['metric']}: {r['verdict']}" + (f" ({r['note']})" if r["note"] else "")
        for r in rows
        if not metrics or r["metric"] in metrics
    ]


def _unjudged(rows: list[dict], metrics: list[str] | None) -> list[str]:
    return [
        f"{metric}: judged in no row (on neither side with enough seeds, or not comparable)"
        for metric in metrics or []
        if not any(r["metric"] == metric and r["verdict"] in JUDGED for r in rows)
    ]


def failing(rows: list[dict], options: CompareOptions) -> list[str]:
    """The lines that fail this comparison: those of ``--fail-on worse`` and of ``--require
    equivalent``, as asked, each line once."""
    metrics = list(options.fail_metric)
    found = regressions(rows, metrics) if options.fail_on == "worse" else []
    found += short_of_equivalent(rows, metrics) if options.require == "equivalent" else []
    return list(dict.fromkeys(found))


def _name(row: dict) -> str:
    job = f"{row['job']}/{row['cell']}" if row["cell"] else row["job"]
    return f"{plain(job)} {plain(row['profile'])}"


# --- output -------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def plain(text: str) -> str:
    """``text`` with control characters (ANSI escapes, newlines) shown as escapes, not obeyed."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def markdown(text: str) -> str:
    """``text`` safe inside a Markdown table cell: control characters escaped as by
    :func:`plain`, Markdown's punctuation backslash-escaped (no link, heading or HTML)."""
    return _MARKDOWN.sub(r"\\\1", plain(text))


# A value cell markdown cannot misread (numbers, intervals, words): shown as it is. Anything
# else, an identifier or free text, goes in a code span or is escaped.
_PLAIN_VALUE = re.compile(r"([\w .,;:=+\-−–±%×\[\]()]|<(?=[\d.]))*")  # "<0.0001", no tag


def _md_value(text: str) -> str:
    """A generated value (``0.912 ± 0.004 (n=4)``, ``+1.2 pt [+0.3, +2.1]``) as it reads, or in
    a code span where markdown would read it otherwise (``_`` emphasis, a ``](`` link)."""
    if _PLAIN_VALUE.fullmatch(text) and "_" not in text and "](" not in text:
        return text
    return code_span(text, in_table=True)


def _side_text(row: dict, which: str) -> str:
    from mnist_suite.summary import mean_ci

    s = row[which]
    if s is None:
        return "-"
    if row["kind"] == "benchmark":
        return f"{s['median']:.3f} [{s['q1']:.3f}–{s['q3']:.3f}]"
    return f"{mean_ci(s['mean'], s['half_width'], row['metric'])} (n={s['n']})"


def _diff_text(row: dict) -> str:
    if row["diff"] is None:
        return "-"
    return meaning(row["metric"]).difference_text(row["diff"], row["low"], row["high"])


def _how(row: dict) -> str:
    if row["method"] == "paired":
        # Shared: the sides hold other seeds too, left out of the pairs (a gate's 4 of 10).
        every = row["pairs"] == row["base"]["n"] == row["new"]["n"]
        return f"paired, {row['pairs']} {'' if every else 'shared '}seeds"
    return row["method"] or "-"


def _p_text(row: dict, alpha: float) -> str:
    """The adjusted p in two significant digits, more where two would round it across
    ``alpha`` (0.0496 is significant at 5%, not "0.050"); ``<0.0001`` below that."""
    p = row["p_adjusted"]
    if p is None:
        return "-"
    if p < 1e-4:
        return "<0.0001"
    digits = 2
    while (float(f"{p:.{digits}g}") <= alpha) != (p <= alpha):
        digits += 1
    return f"{p:#.{digits}g}"


def text_rows(
    rows: list[dict], confidence: float = CONFIDENCE
) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table (sides: mean ± 95% CI (n); the difference with
    its family's simultaneous interval; Holm's adjusted p); raw text, which each renderer
    escapes for its medium."""
    diff = f"new − base [{100 * confidence:g}% simultaneous CI]"
    header = ["job", "profile", "metric", "base", "new", diff, "interval", "p (Holm)"]
    header += ["verdict", "notes"]
    cells = []
    for r in rows:
        notes = [r["note"]] if r["note"] else []
        if r["config_changes"]:
            notes.append(f"config: {r['config_changes']}")
        if r["mixed_code"]:
            notes.append(f"mixed code fingerprints on {' and '.join(r['mixed_code'])}")
        if r.get("seeds") is not None:  # compare --until-decided: the seeds the row got
            state = "decided" if r["verdict"] in DECIDED else "undecided"
            notes.append(f"{state} at {r['seeds']} seeds")
        job = f"{r['job']}/{r['cell']}" if r["cell"] else r["job"]
        cells.append(
            [
                job,
                r["profile"],
                r["metric"],
                _side_text(r, "base"),
                _side_text(r, "new"),
                _diff_text(r),
                _how(r) if r["kind"] == "run" else "quartiles",
                _p_text(r, 1 - confidence),
                r["verdict"],
                "; ".join(notes),
            ]
        )
    return header, cells


def _tally(rows: list[dict]) -> str:
    words = dict.fromkeys(r["verdict"] for r in rows)
    return ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in words)


def render_text(
    base: Side,
    new: Side,
    rows: list[dict],
    rules: dict[str, Rule] = RULES,
    confidence: float = CONFIDENCE,
    preface: tuple[str, ...] = (),
) -> str:
    """The terminal's table; ``preface`` lines go above it (how the seeds were chosen)."""
    from mnist_suite.summary import table

    header, cells = text_rows(rows, confidence)
    cells = [[plain(c) for c in row] for row in cells]
    notes = "".join(f"{plain(line)}\n" for line in speed_notes(base, new, rules))
    side_notes = "".join(f"{plain(line)}\n" for line in [*preface, *side_notes_of(base, new)])
    return (
        f"base {plain(base.label)}\nnew  {plain(new.label)}\n{side_notes}{table(header, cells)}\n"
        f"{len(rows)} figures: {_tally(rows)}.\n{notes}{rules_note(rules, confidence, rows)}"
    )


def render_markdown(
    base: Side,
    new: Side,
    rows: list[dict],
    rules: dict[str, Rule] = RULES,
    confidence: float = CONFIDENCE,
    preface: tuple[str, ...] = (),
) -> str:
    """The table in markdown; ``preface`` lines go above it, as in :func:`render_text`."""
    header, cells = text_rows(rows, confidence)
    verdict = header.index("verdict")
    lines = [f"Base: {markdown(base.label)}; new: {markdown(new.label)}.", ""]
    above = [*preface, *side_notes_of(base, new)]
    if above:
        lines += [*(markdown(line) for line in above), ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    identifiers = {header.index(h) for h in ("job", "profile", "metric")}
    notes = header.index("notes")
    for row in cells:
        cells_md = [
            code_span(c, in_table=True)
            if i in identifiers
            else markdown(c)
            if i == notes
            else _md_value(c)
            for i, c in enumerate(row)
        ]
        if row[verdict] in (BETTER, WORSE):
            cells_md[verdict] = f"**{row[verdict]}**"
        lines.append("| " + " | ".join(cells_md) + " |")
    lines += ["", *(markdown(n) for n in speed_notes(base, new, rules))]
    lines.append(rules_note(rules, confidence, rows))
    return "\n".join(lines)


def families(rows: list[dict], confidence: float = CONFIDENCE) -> dict[str, dict]:
    """Each family (:data:`FAMILIES`) with its rows judged together and the level of each of
    its intervals (benchmark ratios: their rows, each judged alone by its quartiles)."""
    out = {}
    for family in FAMILIES:
        if family == BENCHMARK:
            out[family] = {"rows": sum(r["kind"] == "benchmark" for r in rows), "level": None}
        else:
            m = sum(r["tested"] and r["family"] == family for r in rows)
            out[family] = {"rows": m, "level": family_level(rows, family, confidence)}
    return out


def rules_note(
    rules: dict[str, Rule] = RULES, confidence: float = CONFIDENCE, rows: list | None = None
) -> str:
    """The table's footnote: its families, what its intervals and p-values are, and what each
    verdict needs."""
    rows = rows or []
    effects = ", ".join(f"{m} {r.describe()}" for m, r in rules.items())
    margins = ", ".join(f"{m} ±{r.describe_margin()}" for m, r in rules.items())
    alpha = f"{100 * (1 - confidence):g}%"
    named = []
    for family, f in families(rows, confidence).items():
        count = f"{f['rows']} row{'s' * (f['rows'] != 1)}"
        if not f["rows"]:
            named.append(f"{family}, no row")
        elif family == BENCHMARK:
            named.append(f"{family}, {count} (each by its quartiles, no test)")
        else:
            named.append(f"{family}, {count} (each interval at {100 * f['level']:.4g}%)")
    identical = sum(r["verdict"] == IDENTICAL for r in rows)
    return (
        f"Families, each under Holm's rule so that the chance of any false better/worse within "
        f"it stays at most {alpha}: {'; '.join(named)}. Intervals are simultaneous at "
        f"{100 * confidence:g}% within a family (Bonferroni: each at 1 − {alpha}/m for m rows), "
        "paired on the seeds both sides hold (two or more), Welch otherwise; p is "
        f"Holm-adjusted within the family. Outside every family: {identical} identical "
        f"row{'s' * (identical != 1)} (each seed of one side with the same figure on the other) "
        "and the rows that could not be judged. Better/worse needs an adjusted p of at most "
        f"{alpha} and the difference to reach the minimum effect ({effects}; benchmark ratios: "
        f"{100 * benchcompare.TOLERANCE:g}% beyond the quartiles, else no detectable change). "
        "Equivalent needs the row's simultaneous interval strictly inside its margin "
        f"({margins}; relative ones of the base mean): two one-sided tests, each at "
        f"{alpha}/(2m). Inconclusive: neither; its note estimates the seeds that would likely "
        "decide it."
    )


def document(
    base: Side,
    new: Side,
    rows: list[dict],
    rules: dict[str, Rule] = RULES,
    confidence: float = CONFIDENCE,
    extra: dict | None = None,
) -> dict[str, Any]:
    """The ``--json`` output (``extra``: fields of its own, how the seeds were chosen)."""
    return (extra or {}) | {
        "base": base.label,
        "new": new.label,
        "notes": side_notes_of(base, new),
        "confidence": confidence,
        "multiple_comparisons": {
            "method": "Holm",
            "families": families(rows, confidence),
            "intervals": "simultaneous within a family: Bonferroni, each at "
            "1 - (1 - confidence) / rows",
            "rows_judged": sum(r["tested"] for r in rows),
            "identical_rows": sum(r["verdict"] == IDENTICAL for r in rows),
            "false_alarm_rate_per_family_at_most": 1 - confidence,
            "false_equivalent_rate_per_family_at_most": (1 - confidence) / 2,
        },
        "rules": {
            m: {"higher_is_better": r.higher_is_better, "absolute": r.absolute}
            | {"relative": r.relative, "margin_absolute": r.margin_absolute}
            | {"margin_relative": r.margin_relative}
            for m, r in rules.items()
        },
        "rows": rows,
        "speed_notes": speed_notes(base, new, rules),
        "regressions": regressions(rows),
    }


def rules_for(
    min_effects: list[str], fail_metrics: list[str], confidence: float, margins: list[str] = ()
) -> dict:
    """The rules of one comparison (:func:`parse_min_effects`), once its fail metrics and its
    confidence are checked: ConfigError (one line) for any of them out of place."""
    rules = parse_min_effects(min_effects, margins)
    check_fail_metrics(fail_metrics, rules)
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"confidence {confidence}: expected a coverage in [0.5, 1)")
    return rules


def judge(
    base: Side,
    new: Side,
    options: CompareOptions,
    rows: list[dict] | None = None,
    preface: tuple[str, ...] = (),
    extra: dict | None = None,
) -> tuple[str, list[str]]:
    """``compare``'s answer: (the table as text, markdown or JSON, the lines that fail it:
    none unless ``options.fail_on`` or ``options.require`` asks). ``rows`` already judged
    (:mod:`mnist_suite.sequential`) are shown as they are, with ``preface`` above the table and
    ``extra`` in the JSON."""
    from mnist_suite.files import dumps

    rules, confidence = options.rules(), options.confidence
    if (options.fail_on or options.require) and SPEED_METRIC in options.fail_metric:
        # Asked to judge speed, sides from other machines can give no verdict: refused.
        for group in sorted(base.groups() & new.groups()):
            b, n = base.stats.get((*group, SPEED_METRIC)), new.stats.get((*group, SPEED_METRIC))
            inside = (_inside(base, group), _inside(new, group))
            why = machine_problem(b, n, inside) if b and n else ""
            if why:
                raise ConfigError(f"{SPEED_METRIC} cannot be judged: {why}")
    rows = compare(base, new, rules, confidence) if rows is None else rows
    if options.json:
        text = dumps(document(base, new, rows, rules, confidence, extra))
    elif options.md:
        text = render_markdown(base, new, rows, rules, confidence, preface)
    else:
        text = render_text(base, new, rows, rules, confidence, preface)
    return text, failing(rows, options)


def shared(base: Side, new: Side) -> bool:
    """Whether the two sides have a job, cell, profile or benchmark in common."""
    return bool(base.groups() & new.groups() or base.ratios.keys() & new.ratios.keys())


def parse_min_effects(pairs: list[str], margins: list[str] = ()) -> dict[str, Rule]:
    """``metric=0.005`` (absolute) or ``metric=5%`` (relative) overrides of :data:`RULES`'
    minimum effects (``pairs``) and equivalence margins (``margins``)."""
    rules = dict(RULES)
    for what, given in (("min effect", pairs), ("margin", margins)):
        for pair in given:
            metric, absolute, relative = _amount(what, pair, rules)
            rule = rules[metric]
            if what == "margin":
                rules[metric] = replace(rule, margin_absolute=absolute, margin_relative=relative)
            else:
                rules[metric] = replace(rule, absolute=absolute, relative=relative)
    return rules


def _amount(what: str, pair: str, rules: dict[str, Rule]) -> tuple[str, float, float]:
    """(metric, absolute, relative) of ``METRIC=0.005`` or ``METRIC=5%``; one-line ConfigError
    naming ``what`` otherwise."""
    metric, _, value = pair.partition("=")
    try:
        relative = value.endswith("%")
        amount = float(value.rstrip("%")) / (100 if relative else 1)
        if not (math.isfinite(amount) and amount >= 0):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{what} {plain(pair)!r}: expected METRIC=0.005 or METRIC=5%") from None
    if metric not in rules:
        raise ConfigError(f"{what} {plain(pair)!r}: compared metrics are {', '.join(rules)}")
    return metric, 0.0 if relative else amount, amount if relative else 0.0


class _Callable(types.ModuleType):
    """This module called is the Python API's compare (:func:`mnist_suite.api.compare`): the
    package's attribute ``mnist_suite.compare`` is this module once it is imported."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from mnist_suite.api import compare

        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _Callable
