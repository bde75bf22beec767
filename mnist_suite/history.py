"""``mnist-suite history JOB``: the job's figure at each commit whose runs exist.

Every run records the commit of the code that made it (``config.json``'s ``commit_info``: the
checkout's HEAD, or the commit baked into a revision's image), so a runs folder where
``compare`` and ``bisect`` have run revisions (``build/ab/runs`` by default, its image and
older-code subfolders included) holds a history: per commit on HEAD's first-parent line, oldest
first, and per cell and profile, the mean with its 95% interval over the seeds, and the verdict
against the point before it in its series — ``compare``'s own (paired by seed when both hold
the same seeds, Welch otherwise; its families, minimum effects, margins and confidence).

A figure the machine does not move (accuracy, MSE, loss) is one series per cell and profile.
A clock (:data:`~mnist_suite.compare.SPEED_METRIC`) is one series per machine: its identity,
host included, and whether it ran in a container (two points are of one machine when compare's
:func:`~mnist_suite.compare.machine_problem` finds no difference). A point is judged only
against the point before it in its series, and only when compare judges them (at comparable
loads, :func:`~mnist_suite.compare.speed_comparable`); a figure joins the two by a line only
then. A point whose runs span machines, or with runs that record no machine, stands alone:
never judged, never joined.

Runs of commits off that line, of a dirty work tree (not the commit they name), or with no
commit recorded are left out, and counted. :func:`follow` builds the :class:`History` that the
command prints and the report's "Across commits" section draws.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_suite import ab
from mnist_suite.compare import (
    SPEED_METRIC,
    CompareOptions,
    Side,
    Stat,
    compare,
    machine_problem,
    plain,
    side_of_runs,
    speed_comparable,
)
from mnist_suite.errors import ConfigError
from mnist_suite.files import dumps
from mnist_suite.meanings import meaning
from mnist_suite.runs import RunRecord, find_runs, load_run
from mnist_suite.summary import HEADLINE, mean_ci, table

# The series of clocks that no other point can be judged against: each point stands alone.
UNRECORDED, SEVERAL = "machine not recorded", "several machines"
FINISHED = ("done", "diverged", "failed")  # a figure counts diverged and failed runs against it


@dataclass(frozen=True)
class Point:
    """One cell and profile's figure at one commit, over the seeds of its runs there."""

    commit: str
    subject: str
    cell: str
    profile: str
    # A clock's machine (CPU model and host, short; :data:`UNRECORDED`, :data:`SEVERAL`), or
    # None for a figure the machine does not move.
    series: str | None
    fingerprints: list[str]
    n: int
    mean: float | None
    half_width: float | None
    diverged: int
    seeds: list[int]
    # Compare's row against the point before it in its series; None when not judged.
    against_previous: dict | None
    note: str = ""  # why it was not judged against the point before it

    @property
    def line(self) -> tuple[str, str, str | None]:
        """The series it belongs to: (cell, profile, machine)."""
        return self.cell, self.profile, self.series

    def to_json(self) -> dict[str, Any]:
        half = self.half_width
        return {
            "commit": self.commit, "subject": self.subject, "cell": self.cell,
            "profile": self.profile, "series": self.series, "fingerprints": self.fingerprints,
            "n": self.n, "mean": self.mean, "half_width": half, "diverged": self.diverged,
            "ci_low": None if half is None else self.mean - half,
            "ci_high": None if half is None else self.mean + half,
            "seeds": self.seeds, "against_previous": self.against_previous, "note": self.note,
        }  # fmt: skip


@dataclass(frozen=True)
class History:
    """A job's figure at each commit holding its runs, oldest first."""

    job: str
    metric: str | None
    runs: str  # where the runs were read
    points: list[Point]
    left_out: int  # runs at no clean commit of the line

    def commits(self) -> list[str]:
        """The commits holding a point, oldest first."""
        return list(dict.fromkeys(p.commit for p in self.points))

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job, "metric": self.metric, "runs": self.runs,
            "points": [p.to_json() for p in self.points], "left_out": self.left_out,
        }  # fmt: skip


def run_folders(runs: Path) -> list[Path]:
    """``runs`` and the subfolders compare keeps runs in (``.rev-*`` for code whose run ids
    carry no fingerprint, ``.images-*`` for runs made in a revision's images)."""
    folders = [runs]
    for folder in (runs, *sorted(runs.glob(".rev-*"))):
        if folder is not runs and folder.is_dir() and not folder.is_symlink():
            folders.append(folder)
        folders += [
            p for p in sorted(folder.glob(".images-*")) if p.is_dir() and not p.is_symlink()
        ]
    return folders


def records_in(runs: Path, job: str | None = None) -> list[RunRecord]:
    """The runs (of ``job``, else all) in ``runs`` and compare's subfolders of it."""
    return [load_run(path) for folder in run_folders(runs) for path in find_runs(folder, job)]


def line_of(repo: Path, since: str | None) -> list[tuple[str, str]]:
    """(sha, subject) of HEAD's first-parent line, oldest first, from ``since`` on."""
    start = None
    if since is not None:
        start = ab.commit_of(repo, since)
        if start is None:
            raise ConfigError(f"--since {since!r}: no such revision in {repo}")
    done = subprocess.run(
        ["git", "-C", str(repo), "log", "--first-parent", "--reverse", "--format=%H%x00%s%x00",
         "HEAD", "--"],
        capture_output=True, text=True, errors="replace",
    )  # fmt: skip
    if done.returncode:
        raise ConfigError(f"{repo}: no commits to follow")
    fields = done.stdout.split("\0")
    line = [(h.strip(), s) for h, s in zip(fields[0:-1:2], fields[1::2], strict=False)]
    if start is not None:
        shas = [sha for sha, _ in line]
        if start not in shas:
            raise ConfigError(f"--since {since!r}: not on HEAD's first-parent line")
        line = line[shas.index(start) :]
    return line


def at_commits(
    records: list[RunRecord], line: list[tuple[str, str]]
) -> tuple[list[tuple[str, str, list[RunRecord]]], int]:
    """(commit, subject, its finished, diverged and failed runs) per commit of ``line`` holding
    any, in its order; and how many runs were left out (no clean commit on the line).

    A run found twice at one commit (the same job and run id: a report's runs folder that is
    compare's too, a revision run on this host and in its image) counts once: a finished one,
    else the newest.
    """
    position = {sha: i for i, (sha, _) in enumerate(line)}
    by_commit: dict[str, dict[tuple[str, str], RunRecord]] = {}
    left_out = 0
    for run in records:
        if run.state not in FINISHED:
            continue
        info = run.envelope["commit_info"]
        sha = info.get("id")
        if info.get("dirty") or not isinstance(sha, str) or sha not in position:
            left_out += 1
            continue
        found = by_commit.setdefault(sha, {})
        key = (run.job, run.run_id)
        if key not in found or _fresher(run, found[key]):
            found[key] = run
    shas = sorted(by_commit, key=position.get)
    return [(sha, line[position[sha]][1], list(by_commit[sha].values())) for sha in shas], left_out


def rules_for(metric: str | None, options: CompareOptions) -> dict:
    """Compare's rules under ``options``, once ``metric`` (when given) is known to be one of
    them: ConfigError (one line) otherwise."""
    rules = options.rules()
    if metric is not None and metric not in rules:
        raise ConfigError(f"--metric {metric!r}: compared metrics are {', '.join(rules)}")
    return rules


def _fresher(run: RunRecord, other: RunRecord) -> bool:
    return (run.state == "done", run.started_at) > (other.state == "done", other.started_at)


def follow(
    job: str,
    records: list[RunRecord],
    line: list[tuple[str, str]],
    metric: str | None = None,
    options: CompareOptions | None = None,
    runs: str = "",
) -> History:
    """The history of ``job``'s ``metric`` (default: its headline figure) over the commits of
    ``line`` that hold its runs among ``records``; ``runs`` says where they were read.

    Raises
    ------
    ConfigError
        ``metric`` is not a compared metric, or ``options`` ask for a rule that does not parse.
    """
    options = options or CompareOptions()
    rules = rules_for(metric, options)
    found, left_out = at_commits([r for r in records if r.job == job], line)
    sides = [(sha, subject, side_of_runs(sha[:10], at), at) for sha, subject, at in found]
    metric = metric or next(
        (m for m in HEADLINE for _, _, s, _ in sides if any(k[3] == m for k in s.stats)), None
    )
    points = []
    # The last point of each series that can be judged: (cell, profile, machine) -> its side,
    # figure and whether it ran in a container.
    last: dict[tuple, tuple[Side, Stat, Any]] = {}
    for sha, subject, side, at in sides:
        for key, stat in sorted(side.stats.items()):
            if key[0] != job or key[3] != metric:
                continue
            inside = _inside(side, key[:3])
            series, note, lane = None, "", (key[1], key[2], None)
            if metric == SPEED_METRIC:
                group_runs = [r for r in at if (r.cell, r.profile) == key[1:3]]
                series, note, lane = _machine(key[1:3], stat, inside, group_runs, last)
            against = None
            if lane is not None and lane in last:
                now = (side, stat, inside)
                against, note = _against(last[lane], now, key, rules, options.confidence)
            if lane is not None:
                last[lane] = (side, stat, inside)
            points.append(Point(
                sha, subject, key[1], key[2], series, side.fingerprints.get(key[:3], []),
                stat.n, stat.mean, stat.half_width(), stat.diverged, sorted(stat.values or {}),
                against, note,
            ))  # fmt: skip
    return History(job, metric, runs, points, left_out)


def _inside(side: Side, group: tuple) -> Any:
    """Whether the group's runs on ``side`` ran in a container (None: mixed or not said)."""
    machine = side.machines.get(group)
    return machine.get("in_container") if isinstance(machine, dict) else None


def _machine(
    cell_profile: tuple[str, str], stat: Stat, inside: Any, runs: list[RunRecord], last: dict
) -> tuple[str, str, tuple | None]:
    """A clock's series (its machine's name), a note, and the key of the series it is judged
    in: None for a point no other can be judged against (runs of several machines, or of an
    unrecorded one)."""
    identities = list((stat.identities or {}).values())
    if not any(identities):
        return UNRECORDED, f"{UNRECORDED}: not comparable", None
    unrecorded = identities.count(None)
    if unrecorded:
        return UNRECORDED, f"{UNRECORDED} for {unrecorded} of its runs: not comparable", None
    distinct = {json.dumps(i, sort_keys=True) for i in identities}
    if len(distinct) > 1:
        return SEVERAL, f"runs of {len(distinct)} machines: not comparable", None
    if not isinstance(inside, bool):
        return SEVERAL, "runs in and out of a container: not comparable", None
    for lane, (_, before, before_inside) in last.items():
        if lane[:2] == cell_profile and not machine_problem(before, stat, (before_inside, inside)):
            return lane[2], "", lane
    # A new machine. Two alike in CPU model and host (another memory size, say) stay two series.
    name = unique = machine_name(identities[0], inside, runs)
    taken, k = {lane[2] for lane in last if lane[:2] == cell_profile}, 1
    while unique in taken:
        k += 1
        unique = f"{name} #{k}"
    return unique, "", (*cell_profile, unique)


def machine_name(identity: dict[str, str], inside: bool, runs: list[RunRecord]) -> str:
    """A machine as people tell it apart: its CPU model (short, from the runs' records, else its
    identity's vendor, family and model), its host, and whether the runs were in a container."""
    brands = (r.envelope["machine_info"].get("cpu") for r in runs)
    brand = next((b for b in brands if isinstance(b, str) and b.strip()), "")
    model = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b.*|\s+(?=\s)", "", brand).strip()
    if not model:
        model = f"{identity['vendor']} family {identity['family']} model {identity['model']}"
    return plain(f"{model[:40]}, host {identity['host']}" + (", container" if inside else ""))


def _against(
    before: tuple[Side, Stat, Any],
    now: tuple[Side, Stat, Any],
    key: tuple,
    rules: dict,
    confidence: float,
) -> tuple[dict | None, str]:
    """Compare's row of ``key`` for the point before (its side, figure, and whether it ran in a
    container) against this one, and ""; or None and why compare judged no row (a clock at
    another load)."""
    rows = compare(before[0], now[0], rules, confidence)
    row = next((r for r in rows if r["kind"] == "run" and
                (r["job"], r["cell"], r["profile"], r["metric"]) == key), None)  # fmt: skip
    if row is None:
        why = speed_comparable(before[1], now[1], (before[2], now[2]))
        return None, f"not judged against {before[0].label}: {why}"
    figures = ("verdict", "diff", "low", "high", "p_adjusted", "method", "pairs", "note")
    return {"commit": before[0].label} | {k: row[k] for k in figures}, ""


def change_text(point: Point, metric: str) -> str:
    """The difference from the point before, as the table says it: ``-6.25 pt (paired, 3
    seeds)``; "-" when not judged."""
    against = point.against_previous
    if against is None or against["diff"] is None:
        return "-"
    text = meaning(metric).difference_text(against["diff"])
    if against["method"] == "paired":
        return f"{text} (paired, {against['pairs']} seeds)"
    return f"{text} ({against['method']})" if against["method"] else text


def figure_text(point: Point, metric: str) -> str:
    """``85.24 ± 0.35% (n=3)``."""
    return f"{mean_ci(point.mean, point.half_width, metric)} (n={point.n})"


def history_of(args: argparse.Namespace) -> tuple[History, list[str]]:
    """The history ``args`` ask for (``history``'s arguments), and notes for stderr."""
    repo = ab.repository()
    if repo is None:
        raise ConfigError("history follows git commits: run it in a git checkout")
    options = CompareOptions(
        min_effect=tuple(args.min_effect), margin=tuple(args.margin), confidence=args.confidence
    )
    rules_for(args.metric, options)  # bad usage is refused before any run is read
    runs = Path(args.runs) if args.runs else repo / ab.AB_FOLDER / "runs"
    line = line_of(repo, args.since)
    found = follow(args.job, records_in(runs, args.job), line, args.metric, options, str(runs))
    notes = []
    if found.left_out:
        notes.append(f"note: {found.left_out} runs of {args.job} left out (no clean commit of "
                     "HEAD's first-parent line recorded)")  # fmt: skip
    return found, notes


def render(found: History) -> str:
    """The history as a table, one line per point."""
    metric = found.metric or "-"
    clock = any(p.series is not None for p in found.points)
    noted = any(p.note for p in found.points)
    header = ["commit", "subject", "cell", "profile", *(["machine"] if clock else []), "code"]
    header += [f"{metric} (mean ± 95% CI)", "against previous", "verdict"]
    header += ["note"] if noted else []
    cells = []
    for p in found.points:
        verdict = p.against_previous["verdict"] if p.against_previous else "-"
        cells.append([
            p.commit[:10], p.subject[:50], p.cell or "-", p.profile,
            *([p.series] if clock else []), ",".join(p.fingerprints), figure_text(p, metric),
            change_text(p, metric), verdict, *([p.note or "-"] if noted else []),
        ])  # fmt: skip
    if not cells:
        return f"no runs of {plain(found.job)} at a commit of HEAD's first-parent line in " \
            f"{plain(found.runs)}"  # fmt: skip
    cells = [[plain(c) for c in row] for row in cells]
    return f"{plain(found.job)} {metric}, oldest first\n{table(header, cells)}"


def history(args: argparse.Namespace) -> tuple[str, list[str]]:
    """``history``'s output (a table or JSON) and its notes."""
    found, notes = history_of(args)
    return (dumps(found.to_json()) if args.json else render(found)), notes
