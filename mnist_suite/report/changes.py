"""The report's "Changes against a baseline" section and the code fingerprints of its runs.

The section is ``mnist-suite compare BASELINE RUNS`` as a table: the same rows, intervals and
verdicts (:mod:`mnist_suite.compare`), for a baseline given as ``report --baseline``.
"""

from __future__ import annotations

from pathlib import Path

from mnist_suite import compare
from mnist_suite.report.common import Context
from mnist_suite.report.document import Section, Table
from mnist_suite.runs import RunRecord


def fingerprint_note(runs: list[RunRecord]) -> str:
    """``Code fingerprints: 80d5d915845c (softmax, softmax-original); …`` of the finished runs."""
    jobs: dict[str, set[str]] = {}
    for run in runs:
        if run.state == "done":
            jobs.setdefault(run.fingerprint or "unknown", set()).add(run.job)
    if not jobs:
        return ""
    listed = "; ".join(
        f"{code} ({', '.join(sorted(names))})" for code, names in sorted(jobs.items())
    )
    return (
        f"Code fingerprints (the source each job executes): {listed}. A figure pooling runs of "
        "several fingerprints is marked [mixed code] in its count."
    )


def changes(ctx: Context) -> Section:
    """Every job/cell/profile and metric in both ``ctx.baseline`` and these runs, its verdict."""
    baseline = Path(ctx.baseline)
    s = Section(
        "changes",
        "Changes against a baseline",
        f"These runs against `{baseline}`, as `mnist-suite compare` reports them.",
    )
    base = compare.load_side(baseline)
    new = compare.side_of_runs(str(ctx.runs_dir), ctx.runs)
    rows = compare.compare(base, new)
    if not base.groups() & new.groups():
        s.notes.append(f"The baseline {baseline} shares no job, cell and profile with these runs.")
        return s
    header, cells = compare.text_rows(rows)
    verdict = header.index("verdict")
    table = Table(
        f"{len(rows)} figures against the baseline",
        [(name, "text") for name in header],
        cells,
        bold={
            (i, verdict)
            for i, r in enumerate(rows)
            if r["verdict"] in (compare.BETTER, compare.WORSE)
        },
    )
    s.tables.append(table)
    failing = compare.regressions(rows)
    if failing:
        s.notes.append(f"Failing: {'; '.join(failing)}.")
    s.notes += compare.side_notes_of(base, new) + compare.speed_notes(base, new)
    s.notes.append(compare.rules_note(rows=rows))
    return s
