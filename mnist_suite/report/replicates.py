"""Runs grouped over seeds: one group per (job, cell, profile, config), its figures summarised.

A group is what a table row or a figure series shows: the same job, cell, profile and resolved
config run with several seeds. Its figures are :func:`mnist_suite.stats.summarize` over the
seeds whose run finished (``done``); the others are counted, never averaged in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from mnist_suite.report.collect import RunRecord, number
from mnist_suite.report.common import curve_x, non_default
from mnist_suite.stats import Summary, median_spread, summarize


@dataclass
class Group:
    """The runs of one (job, cell, profile, config) over seeds."""

    job: str
    cell: str
    profile: str
    config: dict
    runs: list[RunRecord]  # sorted by seed

    @property
    def label(self) -> str:
        return f"{self.job}/{self.cell}" if self.cell else self.job

    @property
    def done(self) -> list[RunRecord]:
        return [r for r in self.runs if r.state == "done"]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs if r.seed is not None]

    @property
    def done_seeds(self) -> list[int]:
        """The seeds whose run finished: the ones every figure and mean is made of."""
        return [r.seed for r in self.done if r.seed is not None]

    @property
    def fingerprints(self) -> list[str]:
        """The code fingerprints of the finished runs ("unknown": recorded without one)."""
        return sorted({r.fingerprint or "unknown" for r in self.done})

    def count_text(self) -> str:
        """``5`` when every seed finished, else ``3 of 5 (1 diverged, 1 failed)``; runs of
        several code versions pooled in one figure are marked ``[mixed code: a, b]``."""
        n, total = len(self.done), len(self.runs)
        mixed = (
            f" [mixed code: {', '.join(self.fingerprints)}]" if len(self.fingerprints) > 1 else ""
        )
        if n == total:
            return f"{n}{mixed}"
        states: dict[str, int] = {}
        for r in self.runs:
            if r.state != "done":
                states[r.state] = states.get(r.state, 0) + 1
        listed = ", ".join(f"{k} {v}" for v, k in sorted(states.items()))
        return f"{n} of {total} ({listed}){mixed}"

    def values(self, metric: str) -> list[float | None]:
        return [r.metric(metric) for r in self.done]

    def summary(self, metric: str) -> Summary:
        return summarize(self.values(metric))

    def nested(self, *path: str) -> list[object]:
        """A value inside each finished run's metrics (``time_to_target``, ``seconds``, ...)."""
        out = []
        for r in self.done:
            value: object = r.metrics
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            out.append(value)
        return out

    def curve(self, kind: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(x, mean, (2, x) min/max band) of history ``key`` over finished seeds, x the epochs
        of ``epoch`` rows and the steps of the others (:func:`curve_x`).

        Only points every finished seed logged are kept, so the band never mixes seed counts.
        """
        per_run = []
        for r in self.done:
            points = {
                s: v
                for row in r.rows(kind)
                if isinstance(s := curve_x(row, kind), int | float)
                and (v := number(row.get(key))) is not None
            }
            if points:
                per_run.append(points)
        if not per_run:
            return None
        steps = sorted(set.intersection(*(set(p) for p in per_run)))
        if not steps:
            return None
        values = np.asarray([[p[s] for s in steps] for p in per_run])  # (seeds, steps)
        band = np.stack([values.min(axis=0), values.max(axis=0)])
        return np.asarray(steps, float), values.mean(axis=0), band


def _config_key(run: RunRecord) -> str:
    return json.dumps(run.config, sort_keys=True, default=str)


def groups(records: list[RunRecord], job: str) -> list[Group]:
    """Every group of ``job`` (each cell, profile and config), most finished seeds first."""
    found: dict[tuple, Group] = {}
    for run in records:
        if run.job != job:
            continue
        key = (run.cell, run.profile, _config_key(run))
        if key not in found:
            found[key] = Group(job, run.cell, run.profile, run.config, [])
        found[key].runs.append(run)
    for g in found.values():
        g.runs.sort(key=lambda r: (r.seed is None, r.seed or 0))
    return sorted(found.values(), key=_rank, reverse=True)


def _rank(g: Group) -> tuple:
    # The full profile over quick, the job's default config over a variant of it (a lever
    # tried over as many seeds must not stand for the job), more finished seeds, the newest.
    default = not non_default(g.job, g.cell, g.profile, g.config)
    return (g.profile == "full", default, len(g.done), max(r.started_at for r in g.runs))


def pick_group(records: list[RunRecord], job: str) -> Group | None:
    """The group that represents a single-cell ``job``."""
    found = groups(records, job)
    return found[0] if found else None


def pick_cell_groups(records: list[RunRecord], job: str) -> dict[str, Group]:
    """One group per cell of a batch ``job``, all from one profile (full when any), by label."""
    found = groups(records, job)
    if not found:
        return {}
    profile = found[0].profile
    cells: dict[str, Group] = {}
    for g in found:  # best first: the first group of a cell wins
        if g.profile == profile:
            cells.setdefault(g.cell, g)
    return dict(sorted(cells.items()))


def time_summary(g: Group, target: str) -> tuple[float | None, float | None, float | None, int]:
    """(median, min, max) seconds to ``target`` over the seeds that reached it, and that count."""
    seconds = g.nested("time_to_target", "seconds", target)
    reached = [number(s) for s in seconds if number(s) is not None]
    return (*median_spread(reached), len(reached))
