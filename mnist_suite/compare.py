"""``mnist-suite compare BASE NEW``: did a change help, beyond noise?

Each side is a runs folder, a report's ``results.json`` (or a baseline saved with
``runs --summary --json``: the same ``summaries`` shape), or benchmark results (a
pytest-benchmark JSON file, or a folder of them: its newest run). For every job, cell, profile
and compared metric present on both sides: n and mean ± 95% CI of each side, the difference
NEW − BASE with its Welch 95% interval, and a verdict:

- ``better`` / ``worse``: the interval excludes 0 **and** the difference is at least the
  metric's minimum effect (:data:`RULES`), in the metric's good or bad direction;
- ``no detectable change``: otherwise;
- ``too few seeds``: one side has fewer than two runs (no spread, no interval: no verdict).

Minimum effects (why these): 0.1 point of test accuracy (the last digit the original projects
printed, and about a third of the quick profile's seed spread); 3% relative MSE or loss (about
the seed spread of the autoencoders); 10% of wall time (what a shared machine's load moves a
time by; a speed verdict from wall times needs more than that). Benchmark ratios are compared by
:mod:`mnist_suite.benchcompare` (paired in alternation, so load cancels; its tolerance is the
minimum effect) and join the same table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_suite import benchcompare
from mnist_suite.errors import ConfigError
from mnist_suite.stats import CONFIDENCE

BETTER, WORSE, SAME, FEW = "better", "worse", "no detectable change", "too few seeds"


@dataclass(frozen=True)
class Rule:
    """How a metric is judged: its good direction and its minimum effect."""

    higher_is_better: bool
    absolute: float = 0.0  # minimum |difference| in the metric's units
    relative: float = 0.0  # ... or as a share of the baseline mean, whichever is larger

    def min_effect(self, base_mean: float) -> float:
        return max(self.absolute, self.relative * abs(base_mean))

    def describe(self) -> str:
        if self.relative:
            return f"{100 * self.relative:g}%"
        return f"{self.absolute:g}"


RULES: dict[str, Rule] = {
    "test_accuracy": Rule(higher_is_better=True, absolute=0.001),
    "test_mse": Rule(higher_is_better=False, relative=0.03),
    "test_mse_pixels": Rule(higher_is_better=False, relative=0.03),
    "final_train_loss": Rule(higher_is_better=False, relative=0.03),
    "wall_seconds": Rule(higher_is_better=False, relative=0.10),
}


@dataclass(frozen=True)
class Stat:
    """One side's figure: n, mean and sample sd over seeds (sd None for n < 2)."""

    n: int
    mean: float | None
    sd: float | None

    def half_width(self) -> float | None:
        """Half the Student-t 95% interval of the mean, or None."""
        if self.n < 2 or self.sd is None:
            return None
        from scipy import stats

        return float(stats.t.ppf((1 + CONFIDENCE) / 2, self.n - 1) * self.sd / math.sqrt(self.n))


@dataclass
class Side:
    """What one argument of ``compare`` holds."""

    label: str
    kind: str  # runs | results | bench
    stats: dict[tuple[str, str, str, str], Stat] = field(default_factory=dict)
    configs: dict[tuple[str, str, str], list[dict]] = field(default_factory=dict)
    fingerprints: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    ratios: dict[tuple[str, str], dict] = field(default_factory=dict)


def welch(
    base: Stat, new: Stat, confidence: float = CONFIDENCE
) -> tuple[float, float | None, float | None]:
    """(NEW − BASE, low, high): the difference of means with its Welch interval (95%)."""
    diff = new.mean - base.mean
    if base.n < 2 or new.n < 2 or base.sd is None or new.sd is None:
        return diff, None, None
    vb, vn = base.sd**2 / base.n, new.sd**2 / new.n
    if vb + vn == 0:
        return diff, diff, diff  # identical runs on both sides: no spread to widen the interval
    from scipy import stats

    df = (vb + vn) ** 2 / (vb**2 / (base.n - 1) + vn**2 / (new.n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * math.sqrt(vb + vn)
    return diff, diff - half, diff + half


def judge(
    metric: str,
    base: Stat,
    new: Stat,
    rules: dict[str, Rule] | None = None,
    confidence: float = CONFIDENCE,
) -> dict:
    """The comparison of one figure: difference, interval, minimum effect and verdict."""
    rule = (rules or RULES)[metric]
    if base.mean is None or new.mean is None:
        return {"diff": None, "low": None, "high": None, "min_effect": None, "verdict": FEW}
    diff, low, high = welch(base, new, confidence)
    effect = rule.min_effect(base.mean)
    if low is None or high is None:
        verdict = FEW
    elif (low > 0 or high < 0) and abs(diff) >= effect:
        verdict = BETTER if (diff > 0) == rule.higher_is_better else WORSE
    else:
        verdict = SAME
    return {"diff": diff, "low": low, "high": high, "min_effect": effect, "verdict": verdict}


# --- reading a side ---------------------------------------------------------------------------


def side_of_runs(label: str, records: list) -> Side:
    """A side from run records (:class:`~mnist_suite.runs.RunRecord`) already read."""
    from mnist_suite.summary import summaries

    return _from_summaries(Side(label, "runs"), summaries(records))


def _from_summaries(side: Side, rows: list) -> Side:
    for row in rows:
        if not isinstance(row, dict):
            continue
        try:
            key = (str(row["job"]), str(row.get("cell") or ""), str(row["profile"]))
            metric = str(row["metric"])
            n = int(row["n"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{side.label}: a summary without job, profile, metric or n"
            ) from None
        mean, sd = row.get("mean"), row.get("sd")
        mean = float(mean) if isinstance(mean, int | float) else None
        sd = float(sd) if isinstance(sd, int | float) else None
        known = side.stats.get((*key, metric))
        if known is not None and known.n >= n:
            continue  # several configs of one job, cell and profile: the one with most seeds
        side.stats[(*key, metric)] = Stat(n, mean, sd)
        if isinstance(row.get("configs"), list):
            side.configs.setdefault(key, row["configs"])
        if isinstance(row.get("fingerprints"), list):
            side.fingerprints.setdefault(key, [str(f) for f in row["fingerprints"]])
    return side


def _results_v1(side: Side, doc: dict) -> Side:
    """A schema-1 ``results.json``: its ``runs`` list, summarised here."""
    from mnist_suite.runs import RunRecord
    from mnist_suite.summary import summaries

    records = []
    for run in doc.get("runs") or []:
        if isinstance(run, dict) and isinstance(run.get("metrics"), dict):
            cfg = {k: run.get(k) for k in ("job", "cell", "profile", "seed", "config")}
            records.append(
                RunRecord(
                    Path(str(run.get("job"))) / str(run.get("run_id")),
                    str(run.get("state")),
                    config_file={k: v for k, v in cfg.items() if v is not None},
                    metrics=run["metrics"],
                )
            )
    return _from_summaries(side, summaries(records))


def _newest_bench(folder: Path) -> tuple[Path, dict] | None:
    found = benchcompare.stored(folder)
    if not found:
        return None
    return max(found, key=lambda pd: (str(pd[1].get("datetime") or ""), str(pd[0])))


def load_side(path: Path) -> Side:
    """Read one side of ``compare``; ConfigError (one line) for anything that is not one."""
    from mnist_suite.runs import find_runs, load_run, newest_code

    path = Path(path)
    label = str(path)
    if path.is_dir():
        runs = [p for p in find_runs(path) if (p / "config.json").is_file()]
        if runs:
            # Each job at its newest code: a folder holds every version side by side.
            records, left_out = newest_code([load_run(p) for p in runs])
            if left_out:
                label += f" (newest code of each job; {left_out} older runs left out)"
            return side_of_runs(label, records)
        if (path / "results.json").is_file():
            return load_side(path / "results.json")
        newest = _newest_bench(path)
        if newest is not None:
            bench_path, data = newest
            return Side(f"{bench_path}", "bench", ratios=benchcompare.ratios(data))
        raise ConfigError(
            f"{path}: holds no runs, no results.json and no benchmark JSON to compare"
        )
    if not path.is_file():
        raise ConfigError(f"{path}: no such file or folder")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({str(exc)[:60]})") from None
    if isinstance(doc, dict) and isinstance(doc.get("summaries"), list):
        return _from_summaries(Side(label, "results"), doc["summaries"])
    if isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list):
        return Side(label, "bench", ratios=benchcompare.ratios(doc))
    if isinstance(doc, dict) and isinstance(doc.get("runs"), list):
        return _results_v1(Side(label, "results"), doc)
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


def compare(
    base: Side, new: Side, rules: dict[str, Rule] | None = None, confidence: float = CONFIDENCE
) -> list[dict]:
    """One row per figure with a rule (:data:`RULES`) on both sides, and per benchmark ratio.

    ``confidence`` is the coverage of the difference's interval (0.95; a CI gate may ask more).
    """
    rules = rules or RULES
    rows = []
    for key in sorted(base.stats.keys() & new.stats.keys()):
        job, cell, profile, metric = key
        if metric not in rules:
            continue  # a figure without a direction and a minimum effect gets no verdict
        b, n = base.stats[key], new.stats[key]
        group = (job, cell, profile)
        mixed = [
            side
            for side, s in (("base", base), ("new", new))
            if len(s.fingerprints.get(group, [])) > 1
        ]
        rows.append(
            {
                "kind": "run",
                "job": job,
                "cell": cell,
                "profile": profile,
                "metric": metric,
                "base": {"n": b.n, "mean": b.mean, "sd": b.sd, "half_width": b.half_width()},
                "new": {"n": n.n, "mean": n.mean, "sd": n.sd, "half_width": n.half_width()},
                **judge(metric, b, n, rules, confidence),
                "config_changes": _config_diff(
                    base.configs.get(group, []), new.configs.get(group, [])
                ),
                "mixed_code": mixed,
            }
        )
    for key in sorted(base.ratios.keys() & new.ratios.keys()):
        b, n = base.ratios[key], new.ratios[key]
        result, threshold = benchcompare.verdict(b, n)
        verdict = {"REGRESSED": WORSE, "improved": BETTER}.get(result, SAME)
        rows.append(
            {
                "kind": "benchmark",
                "job": key[0].split("::")[-1],
                "cell": "",
                "profile": "bench",
                "metric": key[1],
                "base": {k: b[k] for k in benchcompare.QUARTILES},
                "new": {k: n[k] for k in benchcompare.QUARTILES},
                "diff": n["median"] - b["median"],
                "low": None,
                "high": None,
                "min_effect": benchcompare.TOLERANCE * b["median"],
                "threshold": threshold,
                "verdict": verdict,
                "config_changes": "",
                "mixed_code": [],
            }
        )
    return rows


def regressions(rows: list[dict], metrics: list[str] | None = None) -> list[str]:
    """Names of the figures that got worse (of ``metrics`` only, when given):
    ``job[/cell] profile metric``."""
    return [
        _name(r) + f" {r['metric']}"
        for r in rows
        if r["verdict"] == WORSE and (not metrics or r["metric"] in metrics)
    ]


def _name(row: dict) -> str:
    job = f"{row['job']}/{row['cell']}" if row["cell"] else row["job"]
    return f"{job} {row['profile']}"


# --- output -------------------------------------------------------------------------------------


def _side_text(row: dict, which: str) -> str:
    from mnist_suite.summary import mean_ci

    s = row[which]
    if row["kind"] == "benchmark":
        return f"{s['median']:.3f} [{s['q1']:.3f}–{s['q3']:.3f}]"
    return f"{mean_ci(s['mean'], s['half_width'], row['metric'])} (n={s['n']})"


def _diff_text(row: dict) -> str:
    if row["diff"] is None:
        return "-"
    scale, unit = (100, " pt") if "accuracy" in row["metric"] else (1, "")
    text = f"{scale * row['diff']:+.3g}{unit}"
    if row["low"] is not None:
        text += f" [{scale * row['low']:+.3g}, {scale * row['high']:+.3g}]"
    return text


def text_rows(
    rows: list[dict], confidence: float = CONFIDENCE
) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table (sides: mean ± 95% CI (n))."""
    diff = f"new − base [{100 * confidence:g}% CI]"
    header = ["job", "profile", "metric", "base", "new", diff, "verdict"]
    header.append("notes")
    cells = []
    for r in rows:
        notes = []
        if r["config_changes"]:
            notes.append(f"config: {r['config_changes']}")
        if r["mixed_code"]:
            notes.append(f"mixed code fingerprints on {' and '.join(r['mixed_code'])}")
        job = f"{r['job']}/{r['cell']}" if r["cell"] else r["job"]
        cells.append(
            [
                job,
                r["profile"],
                r["metric"],
                _side_text(r, "base"),
                _side_text(r, "new"),
                _diff_text(r),
                r["verdict"],
                "; ".join(notes),
            ]
        )
    return header, cells


def render_text(
    base: Side,
    new: Side,
    rows: list[dict],
    rules: dict[str, Rule] = RULES,
    confidence: float = CONFIDENCE,
) -> str:
    from mnist_suite.summary import table

    header, cells = text_rows(rows, confidence)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in (BETTER, WORSE, SAME, FEW)}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return (
        f"base {base.label}\nnew  {new.label}\n{table(header, cells)}\n"
        f"{len(rows)} figures: {tally}.\n{rules_note(rules, confidence)}"
    )


def render_markdown(
    base: Side,
    new: Side,
    rows: list[dict],
    rules: dict[str, Rule] = RULES,
    confidence: float = CONFIDENCE,
) -> str:
    header, cells = text_rows(rows, confidence)
    lines = [f"Base: `{base.label}`; new: `{new.label}`.", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in cells:
        cells_md = [c.replace("|", "\\|") for c in row]
        if row[6] in (BETTER, WORSE):
            cells_md[6] = f"**{row[6]}**"
        lines.append("| " + " | ".join(cells_md) + " |")
    lines += ["", rules_note(rules, confidence)]
    return "\n".join(lines)


def rules_note(rules: dict[str, Rule] = RULES, confidence: float = CONFIDENCE) -> str:
    effects = ", ".join(f"{m} {r.describe()}" for m, r in rules.items())
    return (
        f"A verdict needs the Welch {100 * confidence:g}% interval of the difference to exclude "
        "0 and the "
        f"difference to reach the minimum effect ({effects}; benchmark ratios: "
        f"{100 * benchcompare.TOLERANCE:g}% beyond the quartiles)."
    )


def document(
    base: Side,
    new: Side,
    rows: list[dict],
    rules: dict[str, Rule] = RULES,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The ``--json`` output."""
    return {
        "base": base.label,
        "new": new.label,
        "confidence": confidence,
        "rules": {
            m: {"higher_is_better": r.higher_is_better, "absolute": r.absolute}
            | {"relative": r.relative}
            for m, r in rules.items()
        },
        "rows": rows,
        "regressions": regressions(rows),
    }


def parse_min_effects(pairs: list[str]) -> dict[str, Rule]:
    """``metric=0.005`` (absolute) or ``metric=5%`` (relative) overrides of :data:`RULES`."""
    rules = dict(RULES)
    for pair in pairs:
        metric, _, value = pair.partition("=")
        try:
            relative = value.endswith("%")
            amount = float(value.rstrip("%")) / (100 if relative else 1)
            if not (math.isfinite(amount) and amount >= 0):
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"--min-effect {pair!r}: expected METRIC=0.005 or METRIC=5%"
            ) from None
        if metric not in rules:
            raise ConfigError(f"--min-effect {pair!r}: compared metrics are {', '.join(rules)}")
        rule = rules[metric]
        rules[metric] = Rule(
            rule.higher_is_better, 0.0 if relative else amount, amount if relative else 0.0
        )
    return rules
