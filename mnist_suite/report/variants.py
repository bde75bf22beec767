"""Variants: every config of a job measured over seeds beside its default, one lever a row.

A lever (a config value changed with ``--set``) is judged on the dev split; the test figure is
shown beside it, read once per run. Runs of older code count here (the row names its code):
changing a default changes the code, so the runs that chose it were made by the code before.
"""

from __future__ import annotations

import dataclasses
import json

from mnist_suite.report.collect import RunRecord
from mnist_suite.report.common import Context, non_default, registry
from mnist_suite.report.document import Section, Table
from mnist_suite.report.replicates import Group, groups, time_summary
from mnist_suite.stats import median_spread
from mnist_suite.summary import SPRINT_TARGET

# (dev metric the choice is made on, test metric) per kind of job: the first a run records.
METRICS = (("dev_accuracy", "test_accuracy"), ("dev_mse_pixels", "test_mse_pixels"))
MIN_SEEDS = 2  # an interval needs two


def _metrics(g: Group) -> tuple[str, str] | None:
    for dev, test in METRICS:
        if g.summary(dev).n:
            return dev, test
    return None


def _load(run: RunRecord) -> float | None:
    machine = run.envelope.get("machine_info")
    load = machine.get("load_average") if isinstance(machine, dict) else None
    first = load[0] if isinstance(load, list) and load else None
    return float(first) if isinstance(first, int | float) else None


def _default_fields(g: Group) -> list[str]:
    job = registry().get(g.job)
    try:
        return [f.name for f in dataclasses.fields(job.config)] if job else []
    except TypeError:
        return []


def _to_target(g: Group) -> str:
    """Median seconds to the dev target over the seeds that reached it, and how many did."""
    if not any(isinstance(t, dict) for t in g.nested("time_to_target")):
        return ""
    median, _, _, reached = time_summary(g, SPRINT_TARGET)
    shown = f"{median:.1f}" if median is not None else "—"
    return f"{shown} ({reached}/{len(g.done)})"


def _range(values: list[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f}" if values else ""


def _by_code(runs: list[RunRecord], job: str) -> list[Group]:
    """The job's groups split by code fingerprint, without those a newer code re-ran: the same
    config run again by newer code supersedes the older runs (never pooled with them)."""
    split = []
    for g in groups(runs, job):
        for fingerprint in sorted({r.fingerprint for r in g.runs}, key=str):
            mine = [r for r in g.runs if r.fingerprint == fingerprint]
            split.append(Group(g.job, g.cell, g.profile, g.config, mine))
    newest: dict[tuple, str] = {}
    for g in split:
        newest[_key(g)] = max(newest.get(_key(g), ""), _started(g))
    return [g for g in split if _started(g) == newest[_key(g)]]


def _key(g: Group) -> tuple:
    return g.cell, g.profile, json.dumps(g.config, sort_keys=True, default=str)


def _started(g: Group) -> str:
    """The group's newest start (ISO time, so text order is time order)."""
    return max(r.started_at for r in g.runs)


def _rows(runs: list[RunRecord]) -> list[list]:
    rows = []
    for job in sorted({r.job for r in runs}):
        by_cell: dict[tuple[str, str], list[Group]] = {}
        for g in _by_code(runs, job):
            if len(g.done) >= MIN_SEEDS:
                by_cell.setdefault((g.cell, g.profile), []).append(g)
        for _, variants in sorted(by_cell.items()):
            levers = [g for g in variants if non_default(g.job, g.cell, g.profile, g.config)]
            if len(variants) < 2 or not levers:
                continue  # nothing was varied (older code alone differs: fields added since)
            variants.sort(key=lambda g: min(r.started_at for r in g.runs))  # in the order tried
            for g in variants:
                names = _metrics(g)
                if names is None:
                    continue
                dev, test = g.summary(names[0]), g.summary(names[1])
                seconds, _, _ = median_spread(g.values("train_seconds"))
                changed = non_default(g.job, g.cell, g.profile, g.config)
                # A run of older code may lack a field added since: it ran without that choice.
                missing = sorted(set(_default_fields(g)) - set(g.config))
                changed += [f"without {', '.join(missing)}"] if missing else []
                rows.append(
                    [
                        g.label,
                        g.profile,
                        ", ".join(changed) or "default",
                        ", ".join(f[:7] for f in g.fingerprints),
                        g.count_text().split(" [")[0],
                        names[0],
                        dev.mean,
                        dev.half_width,
                        test.mean,
                        test.half_width,
                        _to_target(g),
                        seconds,
                        _range([x for x in map(_load, g.done) if x is not None]),
                    ]
                )
    return rows


def variants(ctx: Context) -> Section:
    """One row per config of a job (cell, profile) tried over seeds, when there are several."""
    s = Section(
        "variants",
        "Variants: the levers tried",
        "Each job's configs measured over seeds, in the order they were tried: the default "
        "(what the suite runs) and every variant of it, named by what differs from the "
        "default. Choices are made on the dev split (the run's held-out part of the training "
        "set); the test figure is read once per run, after training. Means over seeds with the "
        "95% interval of the mean; seconds: median training clock; load: 1-minute load average "
        "at run start. Runs of earlier code count here (the code column names it): a default "
        "chosen from this table is a change of code.",
    )
    rows = _rows(ctx.every_code or ctx.runs)
    if not rows:
        s.notes.append("No job has been run over seeds with more than one config.")
        return s
    s.tables.append(
        Table(
            "Levers over seeds",
            [
                ("job", "text"),
                ("profile", "text"),
                ("config (vs the profile's default)", "text"),
                ("code", "text"),
                ("seeds done", "text"),
                ("chosen on", "text"),
                ("dev (mean)", "g"),
                ("dev 95% CI", "±f4"),
                ("test (mean)", "g"),
                ("test 95% CI", "±f4"),
                (f"s to {float(SPRINT_TARGET):.0%} dev (median; seeds reaching)", "text"),
                ("train s (median)", "t"),
                ("load at start", "text"),
            ],
            rows,
            note="Accuracies and MSEs as fractions (0.9931 = 99.31%). A row's interval is its "
            "own mean's; two rows of the same seeds differ by less noise than their intervals "
            "suggest (the seeds are paired).",
        )
    )
    return s
