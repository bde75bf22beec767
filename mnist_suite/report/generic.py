"""Jobs no family section reads: every figure over seeds, with the meaning its job gives it.

A job of family ``other`` (a plugin's, say) and the runs of a job this suite does not know (a
plugin not installed where the report is built) are shown here: per group of runs (job, cell,
profile and config over seeds), each numeric figure's n, mean with its 95% interval, min and
max, beside the meaning the job declares for it (:attr:`mnist_suite.jobs.Job.metrics`).
"""

from __future__ import annotations

from mnist_suite.report.common import Context, non_default, registry
from mnist_suite.report.document import Section, Table
from mnist_suite.report.replicates import groups
from mnist_suite.summary import every_number

FAMILY = "other"


def generic_jobs(ctx: Context) -> list[str]:
    """The jobs of the runs that only this section shows: family ``other``, or unknown here."""
    known = registry()
    return sorted({r.job for r in ctx.runs if r.job not in known or known[r.job].family == FAMILY})


def generic(ctx: Context) -> Section:
    """One table per job of :func:`generic_jobs`: every numeric figure of each group over its
    seeds."""
    known = registry()
    s = Section(
        "other",
        "Other jobs",
        "Jobs outside the classifier and reconstruction families, and runs of jobs this suite "
        "does not know (a plugin not installed here): each figure their finished runs "
        "recorded, over seeds, with the meaning the job gives it.",
    )
    for name in generic_jobs(ctx):
        job = known.get(name)
        meanings = job.metrics if job is not None else {}
        rows = []
        for g in groups(ctx.runs, name):
            runs_as = "; ".join([g.profile, *non_default(g.job, g.cell, g.profile, g.config)])
            declared = [m for m in meanings if g.summary(m).n]
            for metric in declared + [m for m in every_number(g.done) if m not in meanings]:
                summary = g.summary(metric)
                rows.append([
                    g.cell, runs_as, g.count_text(), metric, meanings.get(metric, ""),
                    summary.mean, summary.half_width, summary.min, summary.max,
                ])  # fmt: skip
            if not g.done:
                rows.append([g.cell, runs_as, g.count_text(), "", "", None, None, None, None])
        where = "" if job is not None else " (not a job of this suite: no meanings)"
        s.tables.append(
            Table(
                f"{name}{where}",
                [
                    ("cell", "text"),
                    ("runs (profile; config)", "text"),
                    ("seeds done", "text"),
                    ("metric", "text"),
                    ("meaning", "text"),
                    ("mean", "g"),
                    ("95% CI ±", "g"),
                    ("min", "g"),
                    ("max", "g"),
                ],
                rows,
                hide_empty=True,
                note="Mean over the finished seeds; 95% CI ±: half-width of the Student-t "
                "interval of the mean (one seed gives none). The figures the job declares "
                "come first, in its order.",
            )
        )
    return s
