"""Which commit did it? ``mnist-suite bisect GOOD BAD --jobs JOB``.

The commits after GOOD up to BAD on BAD's first-parent line (``git rev-list --first-parent
GOOD..BAD``) are searched for the first one where the job's figure is worse than at GOOD, by
``compare``'s verdict on the two revisions (:func:`mnist_suite.ab.compare_revisions`: each runs
its own code, seed for seed, in one runs folder; paired intervals, the metric's minimum effect).

Only commits that change the job's **code fingerprint** are candidates: a run's identity holds
that fingerprint, so a commit that leaves the code the job executes unchanged makes exactly the
runs of its predecessor and cannot change its figures. It is never run, and the answer says how
many commits were skipped this way. The search is binary over the candidates (it assumes, as
``git bisect`` does, that once worse the figure stays worse). Every step reuses the runs of the
earlier ones (one runs folder, keyed by code: GOOD runs once), and a second call after an
interrupt runs only what is missing.

How a commit's fingerprint is known without running its code (:class:`Fingerprints`):

- **read from its files** when its ``mnist_suite/fingerprint.py`` means what this checkout's
  does (the same parsed code): the fingerprint is then a function of the files alone, so this
  checkout's function applied to the commit's ``.py`` blobs (``git cat-file``, written to a
  scratch folder, never imported) gives what the commit's own code computes. The job's module
  is found the way the registry finds it, from the ``Job(name=JOB, train=…)`` call in a job
  module; a commit where that is not plain (no such call, two of them, a link among its
  sources) is asked instead;
- **asked** otherwise: the revision's own plan names run ids ending in ``-c<fingerprint>``; it
  is made through compare's planning path (its warm worker on this host, or with
  ``--containers`` its planner image) and kept with compare's plans in ``build/ab/plans``.

Endings and exit codes: ``first worse commit: SHA subject`` with the evidence table of that
commit against the candidate before it (1); ``no commit between GOOD and BAD is worse`` (0);
``inconclusive at COMMIT: …`` when compare cannot judge a step: too few seeds, or an
interval neither worse nor within the margin (``inconclusive``: more seeds needed) (4). A step
is not worse when its row is better, equivalent or identical.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from mnist_suite import ab, fingerprint, sequential
from mnist_suite.compare import SPEED_METRIC, CompareOptions, compare, render_text, speed_notes
from mnist_suite.errors import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, ConfigError
from mnist_suite.jobs import declared
from mnist_suite.meanings import meaning
from mnist_suite.summary import HEADLINE
from mnist_suite.verdicts import FEW, INCONCLUSIVE, NOT_WORSE, WORSE

_CODE = re.compile(r"-c([0-9a-f]{12})$")
# One object of ``git cat-file --batch``'s answer: "<sha> <type> <size>".
_HEADER = re.compile(rb"^([0-9a-f]{40,64}) (\w+) (\d+)$")


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:10]

    def __str__(self) -> str:
        return f"{self.short} {self.subject}"


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True)
    if done.returncode:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ab.RevisionError(f"git {args[0]} failed: {why[-1][:200] if why else 'no output'}")
    return done.stdout


def commits_between(repo: Path, good: str, bad: str) -> tuple[Commit, list[Commit]]:
    """GOOD and the commits after it up to BAD on BAD's first-parent line, oldest first; a
    :class:`ConfigError` when either is no commit or GOOD is not on that line."""
    shas = []
    for role, name in (("GOOD", good), ("BAD", bad)):
        sha = ab.commit_of(repo, name)
        if sha is None:
            raise ConfigError(f"{role} {name!r}: no such revision in {repo}")
        shas.append(sha)
    if shas[0] == shas[1]:
        raise ConfigError(f"GOOD {good!r} and BAD {bad!r} are the same commit")
    log = _git(repo, "log", "--first-parent", "--reverse", "--format=%H %P%x00%s%x00",
               f"{shas[0]}..{shas[1]}", "--")  # fmt: skip
    fields = log.decode("utf-8", "replace").split("\0")
    heads, subjects = [f.strip() for f in fields[0:-1:2]], fields[1::2]
    first_parent = heads[0].split()[1:2] if heads else []
    if first_parent != [shas[0]]:
        raise ConfigError(f"GOOD {good!r} is not on the first-parent line of BAD {bad!r}")
    found = [Commit(h.split()[0], s.strip()) for h, s in zip(heads, subjects, strict=False)]
    return Commit(shas[0], _subject(repo, shas[0])), found


def _tree(repo: Path, sha: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{sha}:mnist_suite"],
        capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else ""


def _subject(repo: Path, sha: str) -> str:
    return _git(repo, "log", "-1", "--format=%s", sha, "--").decode("utf-8", "replace").strip()


# --- fingerprints -------------------------------------------------------------------------------


def job_module(root: Path, job: str) -> str | None:
    """The module whose function trains ``job`` in the package at ``root``: the job module the
    registry imports for it (:func:`mnist_suite.jobs.declared`), and in it the one
    ``Job(name=JOB, train=FUNCTION)`` call; None when there is not exactly one, or its function
    is not plainly defined or imported."""
    name = declared(root).get(job)
    if name is None:
        return None
    path = fingerprint.module_file(name, root)
    tree = ast.parse(path.read_bytes(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        keywords = {k.arg: k.value for k in getattr(node, "keywords", [])} if isinstance(
            node, ast.Call
        ) else {}  # fmt: skip
        named = keywords.get("name")
        if isinstance(named, ast.Constant) and named.value == job:
            found.append(_defined_in(tree, name, keywords.get("train")))
    return found[0] if len(found) == 1 else None


def _defined_in(tree: ast.Module, module: str, train: ast.AST | None) -> str | None:
    if not isinstance(train, ast.Name):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == train.id:
            return module
        if isinstance(node, ast.ImportFrom) and any(
            (a.asname or a.name) == train.id for a in node.names
        ):
            if node.level:
                anchor = module.split(".")[: -node.level]
                return ".".join([*anchor, *([node.module] if node.module else [])])
            return node.module
    return None


def _meaning_of(data: bytes) -> bytes | None:
    try:
        return fingerprint.meaning(ast.parse(data))
    except (SyntaxError, ValueError):
        return None


class Fingerprints:
    """The job's code fingerprint at each commit: read from its files where this checkout's
    fingerprint function is the commit's own, asked from its plan otherwise (module docstring).
    """

    def __init__(self, repo: Path, selection: ab.Selection, containers: bool, say):
        self.repo, self.selection, self.containers, self.say = repo, selection, containers, say
        self.job = selection.jobs[0]
        own = Path(fingerprint.__file__).read_bytes()
        self.function = _meaning_of(own)
        self.by_tree: dict[str, str | None] = {}
        self.asked = 0  # commits whose plan was asked
        self.scratch = Path(tempfile.mkdtemp(prefix="mnist-suite-bisect-"))

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.scratch, ignore_errors=True)

    def of(self, sha: str) -> str:
        # The package's tree object: commits that leave it alone share one reading.
        key = _tree(self.repo, sha) or f"none-{sha}"
        if key not in self.by_tree:
            self.by_tree[key] = self.read(sha, key)
        code = self.by_tree[key]
        if code is None:
            code = self.ask(sha)
        return code

    def read(self, sha: str, key: str) -> str | None:
        """The fingerprint from the commit's files, or None when they cannot tell it."""
        listing = _git(self.repo, "ls-tree", "-r", "-z", "--full-tree", sha, "--", "mnist_suite")
        entries = []
        for line in listing.split(b"\0"):
            if not line:
                continue
            info, _, name = line.partition(b"\t")
            mode, kind, obj = info.split()
            path = name.decode("utf-8", "replace")
            if not path.endswith(".py"):
                continue
            parts = PurePosixPath(path).parts
            if mode not in (b"100644", b"100755") or kind != b"blob":
                return None  # a link or a submodule: what its code would read is not here
            if any(p in ("", ".", "..") for p in parts) or "\\" in path:
                return None
            entries.append((path, obj.decode()))
        blobs = self._blobs([obj for _, obj in entries])
        theirs = blobs.get(dict(entries).get("mnist_suite/fingerprint.py", ""))
        if theirs is None or _meaning_of(theirs) != self.function:
            return None
        root = self.scratch / key
        for path, obj in entries:
            target = root.joinpath(*PurePosixPath(path).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(blobs[obj])
        package = root / fingerprint.PACKAGE
        try:
            module = job_module(package, self.job)
            return fingerprint.of_module(module, package) if module else None
        except (SyntaxError, ValueError, RecursionError):
            return None  # code this Python cannot parse: its own plan says what it runs

    def _blobs(self, objects: list[str]) -> dict[str, bytes]:
        out = _git(
            self.repo, "cat-file", "--batch", data="".join(f"{o}\n" for o in objects).encode()
        )
        blobs, at = {}, 0
        while at < len(out):
            end = out.index(b"\n", at)
            header = _HEADER.match(out[at:end])
            if header is None:
                raise ab.RevisionError(f"git cat-file: unexpected answer {out[at:end][:80]!r}")
            size = int(header.group(3))
            blobs[header.group(1).decode()] = out[end + 1 : end + 1 + size]
            at = end + 1 + size + 1
        return blobs

    def ask(self, sha: str) -> str:
        """The fingerprint in the run ids of the revision's own plan (compare's planning path:
        its worker here, or its planner image with ``--containers``); a commit whose run ids
        carry none is its own candidate."""
        self.asked += 1
        cache = self.repo / ab.AB_FOLDER / "plans"
        revision = ab.Revision("NEW", sha[:10], sha, self.repo / ab.AB_FOLDER)
        items = ab.cached_plan(revision, self.selection, cache)
        if items is None:
            self.say(f"{sha[:10]}: its fingerprint is not readable from its files; asking its plan")
            items = self._plan(revision, cache)
        codes = {m.group(1) if (m := _CODE.search(i["run_id"])) else None for i in items}
        if len(codes) != 1 or None in codes:
            return f"unknown-{sha}"
        return codes.pop()

    def _plan(self, revision: ab.Revision, cache: Path) -> list[dict]:
        if self.containers:
            from mnist_suite.revision_images import PLANNER, RevisionImages, engine_for
            from mnist_suite.revision_tree import extracted

            work = self.repo / ab.AB_FOLDER
            engine = engine_for(revision)
            with extracted(self.repo, revision, work) as tree:
                revision = replace(revision, path=tree)
                shared = [self.repo / "build" / "wheelhouse", work / "wheelhouse"]
                log = work / "logs" / f"{revision.sha[:12]}-images.log"
                images = RevisionImages(engine, revision, shared, log, work)
                images.missing([PLANNER])
                return ab.plan_items(
                    revision, self.selection, cache, lambda a: images.plan(a, self.say)
                )
        revision = ab.worktree(self.repo, "NEW", revision.sha)
        worker = ab.Worker(revision, self.repo / ab.AB_FOLDER / "logs" / f"{revision.sha[:12]}.log")
        try:
            return ab.plan_items(
                revision, self.selection, cache, lambda a: ab.plan_in_worker(worker, a)
            )
        finally:
            worker.close()


# --- the search ---------------------------------------------------------------------------------


@dataclass
class Step:
    """compare's answer for one candidate against GOOD: ``worse``, ``not worse`` or
    ``inconclusive`` (why in ``reason``), with its rows of the metric."""

    commit: Commit
    outcome: str
    reason: str
    rows: list[dict]


@dataclass
class Answer:
    job: str
    metric: str
    good: Commit
    bad: Commit
    commits: int
    candidates: int
    steps: list[Step]
    outcome: str  # found | none | inconclusive
    at: Step | None = None  # the first worse step, or the inconclusive one
    evidence: str = ""  # the table of the first worse commit against the candidate before it

    @property
    def exit_code(self) -> int:
        return {"found": EXIT_FAILED, "none": EXIT_OK}.get(self.outcome, EXIT_INCONCLUSIVE)

    def text(self) -> str:
        skipped = self.commits - self.candidates
        head = (
            f"{self.job} {self.metric} from GOOD {self.good} to BAD {self.bad}: "
            f"{self.commits} commits, {skipped} skipped ({self.job}'s code unchanged), "
            f"{self.candidates} candidates, {len(self.steps)} tested"
        )
        if self.outcome == "none":
            return f"{head}\nno commit between GOOD and BAD is worse"
        if self.outcome == "inconclusive":
            return f"{head}\ninconclusive at {self.at.commit}: {self.at.reason}"
        return f"{head}\nfirst worse commit: {self.at.commit.sha} {self.at.commit.subject}\n" + (
            self.evidence
        )


class Bisect:
    """One search: its commits, their fingerprints, and compare's verdict per candidate."""

    def __init__(self, args: argparse.Namespace, say: Callable[[str], None]):
        from mnist_suite.plan import parse_seeds

        self.args, self.say = args, say
        self.repo = ab.repository()
        if self.repo is None:
            raise ConfigError("bisect searches git history: run it in a git checkout")
        if len(args.jobs) != 1:
            raise ConfigError("bisect follows one job: --jobs JOB")
        self.options = CompareOptions(min_effect=tuple(args.min_effect),
                                      margin=tuple(args.margin),
                                      confidence=args.confidence)  # fmt: skip
        self.rules = self.options.rules()
        sequential.check(args)
        if args.metric is not None and args.metric not in self.rules:
            raise ConfigError(f"--metric {args.metric!r}: compared metrics are "
                              f"{', '.join(self.rules)}")  # fmt: skip
        self.metric = args.metric
        self.selection = ab.Selection(
            tuple(args.jobs), args.profile, parse_seeds(args.seeds), tuple(args.overrides)
        )
        self.runs = Path(args.runs) if args.runs else self.repo / ab.AB_FOLDER / "runs"
        self.sides: dict[tuple[str, str], tuple] = {}

    def pair(self, base: Commit, new: Commit) -> tuple:
        """compare's two sides for ``base`` and ``new``, their runs made where missing, and its
        rows; with ``--until-decided`` seeds are added as compare adds them (the metric's rows
        pursued), and the :class:`~mnist_suite.sequential.Decided` outcome comes last (else
        None)."""
        key = (base.sha, new.sha)
        if key not in self.sides:
            args = argparse.Namespace(**vars(self.args))
            args.base, args.new = _name(self.repo, base.sha), _name(self.repo, new.sha)
            if args.until_decided:
                pursued = (self.metric,) if self.metric else ()
                options = replace(self.options, fail_metric=pursued)
                decided = sequential.until_decided(args, options, self.say)
                self.sides[key] = (decided.base, decided.new, decided.rows, decided)
            else:
                sides = ab.compare_revisions(args, self.say)
                rows = compare(*sides, self.rules, self.options.confidence)
                self.sides[key] = (*sides, rows, None)
        return self.sides[key]

    def judge(self, good: Commit, commit: Commit) -> Step:
        base, new, rows, _ = self.pair(good, commit)
        job = self.selection.jobs[0]
        mine = [r for r in rows if r["kind"] == "run" and r["job"] == job]
        if self.metric is None:
            shown = {r["metric"] for r in mine}
            self.metric = next((m for m in HEADLINE if m in shown), None)
            if self.metric is None:
                raise ConfigError(f"{job}: none of {', '.join(HEADLINE)} to judge; name --metric")
        mine = [r for r in mine if r["metric"] == self.metric]
        if not mine:
            notes = speed_notes(base, new, self.rules) if self.metric == SPEED_METRIC else []
            if notes:
                return Step(commit, "inconclusive", notes[0], [])
            raise ConfigError(f"{job} has no {self.metric} figure to judge")
        verdicts = [r["verdict"] for r in mine]
        if WORSE in verdicts:
            return Step(commit, "worse", "", mine)
        if all(v in NOT_WORSE for v in verdicts):
            return Step(commit, "not worse", "", mine)
        row = next(r for r in mine if r["verdict"] not in NOT_WORSE)
        # Too few seeds for an interval, or an interval too wide to tell: more seeds decide.
        reason = "more seeds needed" if row["verdict"] in (FEW, INCONCLUSIVE) else row["verdict"]
        if row["note"]:
            reason += f" ({row['note']})"
        return Step(commit, "inconclusive", reason, mine)

    def run(self) -> Answer:
        good, commits = commits_between(self.repo, self.args.good, self.args.bad)
        job = self.selection.jobs[0]
        finder = Fingerprints(self.repo, self.selection, self.args.containers, self.say)
        try:
            previous, candidates = finder.of(good.sha), []
            for commit in commits:
                code = finder.of(commit.sha)
                if code != previous:
                    candidates.append(commit)
                previous = code
        finally:
            finder.close()
        skipped = len(commits) - len(candidates)
        self.say(f"{len(commits)} commits after GOOD {good.short}: {skipped} leave {job}'s code "
                 f"unchanged and are skipped, {len(candidates)} change it")  # fmt: skip
        answer = Answer(job, self.metric or "?", good, commits[-1], len(commits),
                        len(candidates), [], "none")  # fmt: skip
        if not candidates:
            return answer
        low, high = -1, len(candidates) - 1
        order = [high]  # BAD's code first: if it is not worse, nothing before it is searched
        while order:
            index = order.pop()
            commit = candidates[index]
            self.say(f"step {len(answer.steps) + 1}: {commit} against GOOD {good.short}")
            step = self.judge(good, commit)
            answer.steps.append(step)
            answer.metric = self.metric
            self.say(f"step {len(answer.steps)}: {commit.short} is {step.outcome}"
                     + (f": {step.reason}" if step.reason else _figures(step)))  # fmt: skip
            if step.outcome == "inconclusive":
                answer.outcome, answer.at = "inconclusive", step
                return answer
            if step.outcome == "worse":
                high = index
            elif index == len(candidates) - 1:
                return answer  # BAD is not worse than GOOD
            else:
                low = index
            if high - low > 1:
                order.append((low + high) // 2)
        found = candidates[high]
        parent = good if low == -1 else candidates[low]
        answer.outcome = "found"
        answer.at = next(s for s in answer.steps if s.commit == found)
        base, new, rows, decided = self.pair(parent, found)
        if decided is not None:
            answer.evidence = decided.judge(self.options)[0]
        else:
            answer.evidence = render_text(base, new, rows, self.rules, self.options.confidence)
        return answer


def _figures(step: Step) -> str:
    row = step.rows[0] if step.rows else None
    if row is None or row["diff"] is None:
        return ""
    how = f"paired, {row['pairs']} seeds" if row["method"] == "paired" else row["method"]
    return f" ({row['verdict']}: {meaning(row['metric']).difference_text(row['diff'])}, {how})"


def _name(repo: Path, sha: str) -> str:
    """The commit's short name when it names it alone (labels stay short), else the full one."""
    return sha[:10] if ab.commit_of(repo, sha[:10]) == sha else sha
