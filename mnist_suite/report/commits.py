"""The report's "Across commits" section: each job's headline figure at every commit whose runs
exist, as ``mnist-suite history JOB`` gives it (:func:`mnist_suite.history.follow`).

The runs are the report's and those of compare's runs folder (``build/ab/runs`` of the git
checkout the report is built in, with its image and older-code subfolders), at commits of that
checkout's first-parent line. Per job with runs at two commits or more: a figure like asv's
graphs, with intervals (x: the commits, oldest first; y: the mean with its 95% interval over the
seeds, one line per series; a point better or worse than the one before it marked), and a table
of the points. The section is left out when no job has runs at two commits.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.figure import Figure

from mnist_suite import ab, history
from mnist_suite.errors import ConfigError
from mnist_suite.meanings import meaning
from mnist_suite.report import figures
from mnist_suite.report.common import Context
from mnist_suite.report.document import FigureRef, Section, Table
from mnist_suite.text import printable
from mnist_suite.verdicts import BETTER, WORSE

# How a point better or worse than the one before it is marked: its own marker, colour and word
# (never colour alone).
MARKS = {WORSE: ("v", "#cc3311"), BETTER: ("^", "#009988")}
# The series' own markers, none of them a mark's.
SERIES_MARKERS = [m for m in figures.MARKERS if m not in {m for m, _ in MARKS.values()}]


def histories(ctx: Context) -> tuple[list[history.History], list[str], str]:
    """The history of each job with runs at two commits or more, by job name; one line per job
    whose runs give none (figures that do not summarise); and where the runs were read. None
    outside a git checkout, or in one without commits."""
    repo = ab.repository()
    if repo is None:
        return [], [], ""
    try:
        line = history.line_of(repo, None)
    except ConfigError:
        return [], [], ""
    compares = repo / ab.AB_FOLDER / "runs"
    records = list(ctx.every_code)
    seen = {r.path.resolve() for r in records}
    records += [r for r in history.records_in(compares) if r.path.resolve() not in seen]
    where = f"{ctx.runs_dir} and {compares}"
    found, problems = [], []
    for job in sorted({r.job for r in records}):
        try:
            found.append(history.follow(job, records, line, runs=where))
        except ConfigError as exc:  # runs whose records fit but whose figures do not add up
            problems.append(f"{job}: no history ({exc})")
    return [h for h in found if len(h.commits()) >= 2], problems, where


def across_commits(ctx: Context) -> Section | None:
    """One figure and one table per job with runs at two commits or more; None (no section)
    when there is none and no job's history failed."""
    found, problems, where = histories(ctx)
    if not found and not problems:
        return None
    s = Section(
        "commits",
        "Across commits",
        f"Each job's headline figure at every commit of this checkout's first-parent line whose "
        f"runs are in {where}, oldest first: the mean with its 95% interval over the seeds, one "
        "line per cell and profile, each point judged against the one before it by "
        "`mnist-suite compare` (paired by seed when both hold the same seeds). "
        "`mnist-suite history JOB` prints the same; `--metric train_seconds` follows the "
        "training clock, one series per machine.",
        notes=problems,
    )
    left_out = sum(h.left_out for h in found)
    if left_out:
        s.notes.append(
            f"{left_out} runs of these jobs left out: they record no clean commit of this "
            "checkout's first-parent line (a dirty work tree, another branch)."
        )
    names: set[str] = set()
    for h in found:
        s.figures.append(_figure(ctx, h, names))
        s.tables.append(_table(h))
    return s


def _table(h: history.History) -> Table:
    columns = [
        ("commit", "text"),
        ("subject", "text"),
        ("cell", "text"),
        ("profile", "text"),
        ("machine", "text"),
        ("n", "int"),
        (f"{h.metric} (mean ± 95% CI)", "text"),
        ("against the point before", "text"),
        ("verdict", "text"),
        ("note", "text"),
    ]
    rows, bold = [], set()
    for i, p in enumerate(h.points):
        verdict = p.against_previous["verdict"] if p.against_previous else None
        rows.append([
            p.commit[:10], p.subject, p.cell, p.profile, p.series, p.n,
            history.figure_text(p, h.metric), history.change_text(p, h.metric), verdict, p.note,
        ])  # fmt: skip
        if verdict in MARKS:
            bold.add((i, columns.index(("verdict", "text"))))
    return Table(
        f"{h.job} {h.metric} by commit",
        columns,
        rows,
        bold=bold,
        hide_empty=True,
        note="Oldest first. Bold: better or worse than the point before it in its series.",
    )


def _label(line: tuple[str, str, str | None]) -> str:
    """A series' legend entry: its profile, cell and machine (``$`` literal, not mathtext)."""
    cell, profile, series = line
    text = ", ".join([" ".join(filter(None, [profile, cell])), *filter(None, [series])])
    return printable(text).replace("$", r"\$")


def _figure(ctx: Context, h: history.History, names: set[str]) -> FigureRef:
    """Mean ± 95% interval per commit, one line per series; a line joins two points only when
    the later was judged against the earlier."""
    commits = h.commits()
    x_of = {sha: i for i, sha in enumerate(commits)}
    shown = meaning(h.metric)
    scale = 100 if shown.percent else 1
    fig = Figure(figsize=(max(7.0, 0.55 * len(commits) + 4.5), 4.2), layout="constrained")
    ax = fig.subplots()
    lines = list(dict.fromkeys(p.line for p in h.points))
    for k, line in enumerate(lines):
        drawn = [p for p in h.points if p.line == line and p.mean is not None]
        chains: list[list[history.Point]] = []
        for p in drawn:
            joined = chains and p.against_previous is not None
            if joined and p.against_previous["commit"] == chains[-1][-1].commit[:10]:
                chains[-1].append(p)
            else:
                chains.append([p])
        style = {"color": f"C{k % 10}", "marker": SERIES_MARKERS[k % len(SERIES_MARKERS)]}
        for j, chain in enumerate(chains):
            ax.errorbar(
                [x_of[p.commit] for p in chain],
                [scale * p.mean for p in chain],
                yerr=[scale * (p.half_width or 0.0) for p in chain],
                capsize=3, lw=1.2, ms=5, label=_label(line) if j == 0 else None, **style,
            )  # fmt: skip
    marked = set()
    for p in h.points:
        verdict = p.against_previous["verdict"] if p.against_previous else None
        if verdict not in MARKS or p.mean is None:
            continue
        marker, color = MARKS[verdict]
        x, y = x_of[p.commit], scale * p.mean
        label = None if verdict in marked else f"{verdict} than the point before"
        ax.plot(x, y, ls="none", marker=marker, ms=14, mfc="none", mec=color, mew=2, label=label)
        ax.annotate(verdict, (x, y), xytext=(10, -3), textcoords="offset points", ha="left",
                    fontsize=8, color=color)  # fmt: skip
        marked.add(verdict)
    ax.set_xticks(np.arange(len(commits)), [sha[:10] for sha in commits], rotation=30,
                  ha="right", fontsize=8)  # fmt: skip
    ax.set_xlim(-0.5, len(commits) - 0.5)
    ax.set_xlabel("commit (first-parent line, oldest first)")
    ax.set_ylabel(shown.axis_label())
    ax.grid(alpha=0.3)
    figures.legend_outside(ax)
    title = f"{printable(h.job)}: {h.metric} by commit".replace("$", r"\$")
    ax.set_title(title)
    name = "commits-" + re.sub(r"[^A-Za-z0-9_.-]", "-", h.job)
    while name in names:
        name += "-"
    names.add(name)
    verdicts = [p.against_previous["verdict"] for p in h.points if p.against_previous]
    return ctx.writer.save(
        fig,
        name,
        f"{h.job}: {h.metric} by commit",
        "Mean per commit with its 95% interval over the seeds; a line joins two points of a "
        "series when the later was judged against the earlier; triangles mark a point better "
        "(up) or worse (down) than the one before it.",
        alt=f"{h.job} {h.metric} at {len(commits)} commits: {verdicts.count(WORSE)} worse and "
        f"{verdicts.count(BETTER)} better than the point before.",
    )
