"""``mnist-suite history JOB``: the job's figure at each commit whose runs exist.

Every run records the commit of the code that made it (``config.json``'s ``commit_info``: the
checkout's HEAD, or the commit baked into a revision's image), so a runs folder where
``compare`` and ``bisect`` have run revisions (``build/ab/runs`` by default, its image and
older-code subfolders included) holds a history: per commit on HEAD's first-parent line, oldest
first, and per cell and profile, the mean with its 95% interval over the seeds, and the verdict
against the point before it — ``compare``'s own (paired by seed when both hold the same seeds,
Welch otherwise; its families, minimum effects, margins and confidence).

Runs of commits off that line, of a dirty work tree (not the commit they name), or with no
commit recorded are left out, and counted.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from mnist_suite import ab
from mnist_suite.compare import CompareOptions, Side, compare, plain, side_of_runs
from mnist_suite.errors import ConfigError
from mnist_suite.files import dumps
from mnist_suite.summary import HEADLINE, mean_ci, table


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


def points(job: str, runs: Path, line: list[tuple[str, str]]) -> tuple[list, int]:
    """(commit, subject, its runs of ``job``) per commit of ``line`` holding any, in its
    order; and how many runs were left out (no clean commit on the line)."""
    from mnist_suite.runs import find_runs, load_run

    position = {sha: i for i, (sha, _) in enumerate(line)}
    by_commit: dict[str, list] = {}
    left_out = 0
    for folder in run_folders(runs):
        for path in find_runs(folder, job):
            run = load_run(path)
            if run.state not in ("done", "diverged", "failed"):
                continue
            info = run.envelope["commit_info"]
            sha = info.get("id")
            if info.get("dirty") or not isinstance(sha, str) or sha not in position:
                left_out += 1
                continue
            by_commit.setdefault(sha, []).append(run)
    found = sorted(by_commit, key=position.get)
    return [(sha, line[position[sha]][1], by_commit[sha]) for sha in found], left_out


def history_document(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """The history of ``args.job`` as a document, and notes for stderr."""
    repo = ab.repository()
    if repo is None:
        raise ConfigError("history follows git commits: run it in a git checkout")
    options = CompareOptions(
        min_effect=tuple(args.min_effect), margin=tuple(args.margin), confidence=args.confidence
    )
    rules = options.rules()
    if args.metric is not None and args.metric not in rules:
        raise ConfigError(f"--metric {args.metric!r}: compared metrics are {', '.join(rules)}")
    runs = Path(args.runs) if args.runs else repo / ab.AB_FOLDER / "runs"
    found, left_out = points(args.job, runs, line_of(repo, args.since))
    sides = [(sha, subject, side_of_runs(sha[:10], records)) for sha, subject, records in found]
    metric = args.metric or next(
        (m for m in HEADLINE for _, _, s in sides if any(k[3] == m for k in s.stats)), None
    )
    out, notes = [], []
    if left_out:
        notes.append(f"note: {left_out} runs of {args.job} left out (no clean commit of HEAD's "
                     "first-parent line recorded)")  # fmt: skip
    previous: dict[tuple[str, str], Side] = {}
    for sha, subject, side in sides:
        for key, stat in sorted(side.stats.items()):
            if key[0] != args.job or key[3] != metric:
                continue
            group, half = key[1:3], stat.half_width()
            point = {
                "commit": sha, "subject": subject, "cell": key[1], "profile": key[2],
                "fingerprints": side.fingerprints.get(key[:3], []), "n": stat.n,
                "mean": stat.mean, "half_width": half, "diverged": stat.diverged,
                "ci_low": None if half is None else stat.mean - half,
                "ci_high": None if half is None else stat.mean + half,
                "seeds": sorted(stat.values or {}), "against_previous": None,
            }  # fmt: skip
            before = previous.get(group)
            if before is not None:
                rows = compare(before, side, rules, options.confidence)
                row = next(r for r in rows if r["kind"] == "run" and
                           (r["job"], r["cell"], r["profile"], r["metric"]) == key)  # fmt: skip
                point["against_previous"] = {"commit": before.label} | {
                    k: row[k]
                    for k in ("verdict", "diff", "low", "high", "p_adjusted", "method", "pairs")
                } | {"note": row["note"]}  # fmt: skip
            previous[group] = side
            out.append(point)
    document = {"job": args.job, "metric": metric, "runs": str(runs), "points": out,
                "left_out": left_out}  # fmt: skip
    return document, notes


def render(document: dict) -> str:
    metric = document["metric"] or "-"
    header = ["commit", "subject", "cell", "profile", "code", f"{metric} (mean ± 95% CI)"]
    header += ["against previous", "verdict"]
    cells = []
    for p in document["points"]:
        against = p["against_previous"]
        change, verdict = "-", "-"
        if against is not None:
            verdict = against["verdict"]
            if against["diff"] is not None:
                scale, unit = (100, " pt") if "accuracy" in metric else (1, "")
                change = f"{scale * against['diff']:+.3g}{unit}"
                if against["method"] == "paired":
                    change += f" (paired, {against['pairs']} seeds)"
                elif against["method"]:
                    change += f" ({against['method']})"
        shown = f"{mean_ci(p['mean'], p['half_width'], metric)} (n={p['n']})"
        cells.append([
            p["commit"][:10], p["subject"][:50], p["cell"] or "-", p["profile"],
            ",".join(p["fingerprints"]), shown, change, verdict,
        ])  # fmt: skip
    if not cells:
        return f"no runs of {plain(document['job'])} at a commit of HEAD's first-parent line in " \
            f"{plain(document['runs'])}"  # fmt: skip
    cells = [[plain(c) for c in row] for row in cells]
    return f"{plain(document['job'])} {metric}, oldest first\n{table(header, cells)}"


def history(args: argparse.Namespace) -> tuple[str, list[str]]:
    """``history``'s output (a table or JSON) and its notes."""
    document, notes = history_document(args)
    return (dumps(document) if args.json else render(document)), notes
