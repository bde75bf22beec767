"""Did this commit help? Both revisions run on this machine, seed for seed, alternately.

``mnist-suite compare BASE NEW --jobs JOB…`` where BASE and NEW are git revisions: each runs its
own code through its own command line (its ``mnist_suite.cli.main``, ``plan`` then ``run``), so
a revision is measured as it was written, whatever this copy of the suite has become since.
That code is untrusted input, and where it runs is the user's choice:

- by default on this host, as the user: each revision is checked out once into its own git
  worktree under the checkout's ``build/ab/`` (kept, and reused by the next call) and runs in
  one warm process per side started there; compare says so in one line before anything runs;
- with ``--containers`` only in containers (:func:`in_images`): no checkout, no import, no
  build backend of a revision on this host, the engine checked before anything of a revision
  is written (see :mod:`mnist_suite.revision_images`).

Why alternately: item by item, BASE's then NEW's, seed by seed, so that a change of load on the
machine during the comparison falls on both sides alike (the idea of asv's ``continuous``,
applied to whole training jobs). Why warm processes: imports, the data and TensorFlow's first
trace are paid once per side, as when one side runs alone.

Why one runs folder: a run's identity holds its job's code fingerprint, so both revisions' runs
sit side by side in ``build/ab/runs`` (or ``--runs``), a second call finds them all and runs
nothing, and a job whose code is the same in both revisions has one set of runs, shared (its
verdict is then exactly "no change"). A revision whose run ids carry no fingerprint (older code)
gets a runs folder of its own, so it can never meet the other side's runs.

What a side holds is what its own ``plan`` names: the runs are read from the folders that the
revision's plan lists, never found by searching, so nothing of a third version leaks in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pwd
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_suite.claims import live_holder
from mnist_suite.errors import EXIT_FAILED, ConfigError, RevisionError
from mnist_suite.files import atomic_write_json, read_json
from mnist_suite.launch.local import GRACE_SECONDS, STOP_SIGNALS, die_with_parent, signal_group
from mnist_suite.limits import MAX_CLAIM_WAIT

if TYPE_CHECKING:
    from mnist_suite.revision_images import RevisionImages

AB_FOLDER = Path("build") / "ab"
# A run id that carries its code: ...-c<12 hex> (mnist_suite.plan.run_id).
_CODED_RUN_ID = re.compile(r"-c[0-9a-f]{12}$")
# A run id is one folder name: the plan of another revision is read, not trusted.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")
_REVISION = re.compile(r"^[A-Za-z0-9_./@{}~^+-]{1,200}$")
ROLES = ("BASE", "NEW")


@dataclass(frozen=True)
class Revision:
    """One side: the name as typed, its commit and its tree on this host (its git worktree, or
    with ``--containers`` the suite's copy that its images are built from)."""

    role: str  # BASE | NEW
    name: str
    sha: str
    path: Path

    @property
    def short(self) -> str:
        return self.sha[:10]

    def __str__(self) -> str:
        return f"{self.role} {self.name} ({self.short})"

    @property
    def label(self) -> str:
        return self.name if self.name == self.short else f"{self.name} ({self.short})"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def repository(start: Path | None = None) -> Path | None:
    """The top folder of the git checkout holding ``start`` (default: here), or None."""
    try:
        done = _git(Path(start or Path.cwd()), "rev-parse", "--show-toplevel")
    except OSError:  # no git on this machine
        return None
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def commit_of(repo: Path, name: str) -> str | None:
    """The full commit ``name`` names in ``repo``, or None (never an option: names are checked)."""
    if not _REVISION.fullmatch(name) or name.startswith("-"):
        return None
    done = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}")
    return done.stdout.strip() if done.returncode == 0 else None


def reading(base: str, new: str) -> str:
    """``paths`` when BASE and NEW both exist as files or folders, ``revisions`` when neither
    does and both name commits here; a one-line error for anything else."""
    exist = [Path(s).exists() for s in (base, new)]
    if all(exist):
        return "paths"
    repo = repository()
    commits = [commit_of(repo, s) if repo else None for s in (base, new)]
    if all(commits) and not any(exist):
        return "revisions"
    for role, text, there, sha in zip(("BASE", "NEW"), (base, new), exist, commits, strict=True):
        if not there and sha is None:
            where = "" if repo else " (and this is not a git checkout)"
            raise ConfigError(
                f"{role} {text!r}: neither a file or folder nor a git revision{where}"
            )
    raise ConfigError(
        f"BASE {base!r} and NEW {new!r}: give two folders or files, or two git revisions, "
        "not one of each"
    )


def _commit(repo: Path, role: str, name: str) -> str:
    sha = commit_of(repo, name)
    if sha is None:
        raise ConfigError(f"{role} {name!r}: no such revision in {repo}")
    return sha


def worktree(repo: Path, role: str, name: str) -> Revision:
    """The worktree of revision ``name`` under ``build/ab/``: made once, then reused."""
    sha = _commit(repo, role, name)
    path = repo / AB_FOLDER / f"rev-{sha[:12]}"
    revision = Revision(role, name, sha, path)
    if path.exists():
        at = _git(path, "rev-parse", "HEAD")
        top = _git(path, "rev-parse", "--show-toplevel")
        if at.returncode or at.stdout.strip() != sha or Path(top.stdout.strip()) != path:
            raise RevisionError(
                f"{path}: exists but is not the worktree of {sha[:10]} that compare made; "
                "move it away (compare replaces nothing it did not make)"
            )
        return revision
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _git(repo, "worktree", "add", "--detach", "--quiet", str(path), sha)
    if done.returncode:
        raise RevisionError(f"{revision}: git worktree add failed: {_last_line(done.stderr)}")
    return revision


def host_note(repo: Path, names: tuple[str, str]) -> str:
    """The line said before revisions run on this host: whose code runs, and as whom."""
    sides = " and ".join(
        f"{role} {name} ({_commit(repo, role, name)[:10]})"
        for role, name in zip(ROLES, names, strict=True)
    )
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid {os.getuid()}"
    return f"note: {sides} run their code on this host, as {user}; --containers confines them"


def uncommitted_note(repo: Path, revisions: list[Revision]) -> str | None:
    """A note when a compared revision is HEAD while the work tree has uncommitted changes."""
    head = commit_of(repo, "HEAD")
    dirty = _git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip()
    named = [r for r in revisions if r.sha == head]
    if dirty and named:
        return (
            f"note: the work tree has uncommitted changes; {named[-1].name} means the commit "
            f"{named[-1].short} without them (commit them to compare them)"
        )
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _environment(revision: Revision) -> dict[str, str]:
    # The revision's own package first on the path: its code, this interpreter's libraries.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(revision.path), env.get("PYTHONPATH", "")) if p
    )
    env.pop("PYTHONSAFEPATH", None)
    return env


@dataclass(frozen=True)
class Selection:
    """What both sides run: the same jobs, profile, seeds and overrides."""

    jobs: tuple[str, ...]
    profile: str
    seeds: tuple[int, ...]
    overrides: tuple[str, ...] = ()

    def arguments(self, seeds: tuple[int, ...] | None = None) -> list[str]:
        chosen = self.seeds if seeds is None else seeds
        args = [*self.jobs, "--profile", self.profile, "--seeds", ",".join(map(str, chosen))]
        for value in self.overrides:
            args += ["--set", value]
        return args


def _kept(revision: Revision, selection: Selection, cache: Path) -> Path:
    key = hashlib.sha256(json.dumps(selection.arguments()).encode()).hexdigest()[:16]
    return cache / f"{revision.sha[:12]}-{key}.json"


def cached_plan(revision: Revision, selection: Selection, cache: Path) -> list[dict] | None:
    """The items of the revision's plan for ``selection`` kept in ``cache``, or None."""
    items = read_json(_kept(revision, selection, cache), follow=False)
    return items if isinstance(items, list) and _valid(items) else None


def plan_items(
    revision: Revision, selection: Selection, cache: Path, plan: Callable[[list[str]], object]
) -> list[dict]:
    """The work items the revision's own ``plan`` names for ``selection``, kept in ``cache``: a
    commit's plan for the same arguments never changes. ``plan(arguments)`` asks the revision
    (its warm worker, or its image) and gives the items it saved; they are checked here."""
    items = cached_plan(revision, selection, cache)
    if items is not None:
        return items
    items = plan(selection.arguments())
    if not isinstance(items, list) or not _valid(items):
        raise RevisionError(f"{revision}: its plan is not a plan this compare reads")
    atomic_write_json(_kept(revision, selection, cache), items)
    return items


def _valid(items: list) -> bool:
    try:
        return all(
            isinstance(i, dict) and str(i["job"]) and _RUN_ID.fullmatch(i["run_id"])
            and isinstance(i["seed"], int)
            for i in items
        )  # fmt: skip
    except (KeyError, TypeError):
        return False


def plan_in_worker(worker: Worker, arguments: list[str]) -> object:
    """The items of the plan the revision's warm ``worker`` saves for ``arguments``."""
    with tempfile.TemporaryDirectory(prefix="mnist-suite-ab-") as tmp:
        saved = Path(tmp) / "plan.json"
        code = worker.run(["plan", *arguments, "--save", str(saved)])
        if code or not saved.is_file():
            # Its own one-line reason: an unknown job, a config field it does not have, …
            raise ConfigError(f"{worker.revision}: {worker.last_error().removeprefix('error: ')}")
        doc = read_json(saved)
    return doc.get("items") if isinstance(doc, dict) else None


def _runs_of(runs: Path, revision: Revision, items: list[dict]) -> Path:
    """``runs``, or for a revision whose run ids do not carry its code fingerprint (older code)
    a dot-folder of its own inside it (never listed as runs: mnist_suite.runs.find_runs)."""
    coded = all(_CODED_RUN_ID.search(i["run_id"]) for i in items)
    return runs if coded else runs / f".rev-{revision.sha[:12]}"


@dataclass
class Side:
    revision: Revision
    items: list[dict]
    runs: Path  # the runs folder this side's runs live in
    worker: Worker | None  # on this host: the revision's warm process, it plans and runs
    images: RevisionImages | None = None  # with --containers: the revision's images instead

    def folder(self, item: dict) -> Path:
        return self.runs / item["job"] / item["run_id"]

    def run(self, argv: list[str], item: dict) -> int:
        """``mnist-suite run`` of ``item`` with ``argv`` in the worker or the side's image."""
        if self.images is None:
            return self.worker.run([*argv, "--runs", str(self.runs)])
        return self.images.run(argv, item, self.runs)

    @property
    def log(self) -> Path:
        return self.images.log if self.images is not None else self.worker.log


def sides(
    repo: Path, names: tuple[str, str], selection: Selection, runs: Path, workers: list
) -> list[Side]:
    """Both sides on this host, checked out and planned by their warm workers; each worker is
    appended to ``workers`` as it is made (the caller closes them)."""
    out = []
    for role, name in zip(ROLES, names, strict=True):
        revision = worktree(repo, role, name)
        worker = Worker(revision, repo / AB_FOLDER / "logs" / f"{revision.sha[:12]}.log")
        workers.append(worker)
        items = plan_items(
            revision,
            selection,
            repo / AB_FOLDER / "plans",
            lambda a, w=worker: plan_in_worker(w, a),
        )
        out.append(Side(revision, items, _runs_of(runs, revision, items), worker))
    return out


def identical_jobs(base: Side, new: Side) -> list[str]:
    """Jobs whose runs both sides share: the same run folders, so the same code."""
    same = []
    for job in dict.fromkeys(i["job"] for i in base.items):
        a = {base.folder(i) for i in base.items if i["job"] == job}
        b = {new.folder(i) for i in new.items if i["job"] == job}
        if a and a == b:
            same.append(job)
    return same


# A warm worker: the revision's own command line, called in one process for item after item
# (``mnist_suite.cli.main(argv) -> exit code`` is the console entry point of every revision),
# so imports, the data and TensorFlow's first trace are paid once per side, not once per item.
# Requests arrive as JSON lines on stdin; each exit code goes back on the descriptor in argv[1];
# the command's own output goes to the side's log. SIGTERM (compare stopping it) is Ctrl-C to
# whatever revision runs: its running item records itself interrupted.
WORKER = """
import json, os, signal, sys
from mnist_suite.cli import main
def stop(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop)
answer = os.fdopen(int(sys.argv[1]), "w", buffering=1)
try:
    for line in sys.stdin:
        argv = json.loads(line)
        print("=== mnist-suite " + " ".join(argv), flush=True)
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            code = 130
        sys.stdout.flush()
        answer.write(f"{code}\\n")
        if code == 130:
            break
except KeyboardInterrupt:
    pass
"""
# How long an item another attempt holds (a second compare on the same runs folder) is waited
# for: as long as any run may wait for a claim ($MNIST_SUITE_CLAIM_WAIT's cap), far longer than
# one run of any profile takes. A holder that dies frees the item sooner: its claim counts as
# abandoned at once on this machine, after two silent minutes from another one.
HELD_WAIT_SECONDS = MAX_CLAIM_WAIT
HELD_POLL_SECONDS = 0.5


class Stopped(KeyboardInterrupt):
    """compare got a stop signal (``signum``). A KeyboardInterrupt, so that every handler of
    Ctrl-C on the way out stops what it runs: a worker, a revision's container."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.running = ""  # the item it stopped, if one was running
        self.note = "no run started"


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT, SIGTERM and SIGHUP raise :class:`Stopped` (once: a later signal, whatever it is,
    changes nothing), so compare stops its workers and ends with ``128 + signal``. A signal
    ignored from the start stays ignored: ``nohup mnist-suite compare …`` outlives its terminal."""
    stopping: list[int] = []

    def on_signal(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise Stopped(signum)

    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    previous = {s: h for s, h in handlers.items() if h is not signal.SIG_IGN}
    for s in previous:
        signal.signal(s, on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if stopping else handler)


class Worker:
    """One long-lived process running ``side``'s revision, started on first use.

    It runs in a process group of its own (a Ctrl-C at the terminal reaches compare only, which
    stops it), and the kernel sends it SIGTERM if compare dies (``PR_SET_PDEATHSIG``), so no
    item outlives compare.
    """

    def __init__(self, revision: Revision, log: Path):
        self.revision, self.log = revision, log
        self.child: subprocess.Popen | None = None
        self.answers = None

    def run(self, argv: list[str]) -> int:
        if self.child is None:
            self._start()
        assert self.child is not None and self.child.stdin is not None
        try:
            self.child.stdin.write(json.dumps(argv) + "\n")
            self.child.stdin.flush()
            line = self.answers.readline()
        except BrokenPipeError:
            line = ""
        except KeyboardInterrupt:
            # The worker records its run as interrupted; both sides stay resumable.
            self.stop()
            raise
        if not line.strip().lstrip("-").isdigit():
            self.close()
            return 1  # the worker died: its log says why
        return int(line)

    def _start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        read, write = os.pipe()
        try:
            self.child = subprocess.Popen(
                [sys.executable, "-c", WORKER, str(write)],
                cwd=self.revision.path,
                env=_environment(self.revision),
                stdin=subprocess.PIPE,
                stdout=fd,
                stderr=subprocess.STDOUT,
                pass_fds=(write,),
                text=True,
                process_group=0,
                preexec_fn=die_with_parent,  # compare runs no threads: safe before exec
            )
        finally:
            os.close(fd)
            os.close(write)
        self.answers = os.fdopen(read, "r")

    def last_error(self) -> str:
        """The last ``error:`` line of this worker's log (its command's one-line reason)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no output)"
        errors = [ln for ln in tail.splitlines() if ln.startswith("error:")]
        return errors[-1][:300] if errors else _last_line(tail)

    def close(self) -> None:
        """End it once its item is done: no more items (it exits), else killed after 60 s."""
        if self.child is None:
            return
        with contextlib.suppress(OSError):
            self.child.stdin.close()
        try:
            self.child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        self._forget()

    def stop(self) -> None:
        """End it now: SIGTERM to its group (a running item records ``interrupted``), killed
        if it outlives the grace period."""
        if self.child is None:
            return
        signal_group(self.child, signal.SIGTERM)
        try:
            self.child.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            signal_group(self.child, signal.SIGKILL)
            self.child.wait()
        self._forget()

    def _forget(self) -> None:
        for pipe in (self.child.stdin, self.answers):
            with contextlib.suppress(OSError):
                pipe.close()
        self.child = None


def _pending(side: Side, item: dict) -> bool:
    from mnist_suite.runs import FINAL_STATES, load_run

    path = side.folder(item)
    return not path.is_dir() or load_run(path).state not in FINAL_STATES


def _make(side: Side, item: dict, argv: list[str], label: str, say) -> int:
    """Run ``item`` on ``side``; its exit code. While another attempt holds its run (a second
    compare on this runs folder), wait for that attempt to end: 0 once it has made the run,
    else run it here. A holder still live after :data:`HELD_WAIT_SECONDS` is a
    :class:`RevisionError`."""
    path = side.folder(item)
    deadline = time.monotonic() + HELD_WAIT_SECONDS
    waiting = False
    while _pending(side, item):
        holder = live_holder(path)
        if holder is None:
            try:
                code = side.run(argv, item)
            except Stopped as exc:
                exc.running = label
                raise
            if code != EXIT_FAILED:
                return code
            holder = live_holder(path)
            if holder is None:  # a failure here, or held by an attempt that made it since
                return code if _pending(side, item) else 0
        if not waiting:
            say(f"{label}: held by {holder.describe()}; waiting for its result")
            waiting = True
        if time.monotonic() >= deadline:
            raise RevisionError(
                f"{label}: still held by {holder.describe()} after {HELD_WAIT_SECONDS:.0f} s; "
                "not run here"
            )
        time.sleep(HELD_POLL_SECONDS)
    return 0  # made by another attempt meanwhile


def run_alternately(pair: list[Side], selection: Selection, say=print) -> None:
    """BASE's item, then NEW's, seed by seed and job by job, each side in its warm worker; a
    revision that fails an item stops the comparison with a :class:`RevisionError` (what
    finished stays recorded, so the same call resumes). An item another compare holds is
    waited for (:func:`_make`). On :class:`Stopped`, its note says what was running."""
    order = [
        (side, item)
        for seed in selection.seeds
        for job in selection.jobs
        for side in pair
        for item in side.items
        if item["seed"] == seed and item["job"] == job
    ]
    # Runs both sides share (identical code) are made once: count folders, not items.
    todo = len({side.folder(i) for side, i in order if _pending(side, i)})
    if not todo:
        say("all runs of both sides are recorded: nothing to run")
        return
    say(f"{todo} runs to make, alternating {pair[0].revision} and {pair[1].revision}")
    done, started = 0, time.monotonic()
    try:
        for side, item in order:
            if not _pending(side, item):  # read again: the other side may have made it
                continue
            eta = ""
            if done:
                eta = f", about {(time.monotonic() - started) / done * (todo - done):.0f} s left"
            name = f"{item['job']}{'/' + item['cell'] if item.get('cell') else ''}"
            label = f"{side.revision.role} {side.revision.short} {name} seed {item['seed']}"
            say(f"[{done}/{todo}] {label}{eta}")
            code = _make(side, item, ["run", *_item_arguments(selection, item)], label, say)
            if code == 130:
                raise KeyboardInterrupt
            if code not in (0, 3) or _pending(side, item):
                log = side.log
                raise RevisionError(
                    f"{side.revision}: {name} seed {item['seed']} did not finish (exit {code}); "
                    f"its output is in {log}"
                )
            done += 1
    except Stopped as exc:
        left = todo - done - bool(exc.running)
        exc.note = f"{exc.running} ends as interrupted, " if exc.running else ""
        exc.note += f"{left} runs not started; what finished stays recorded"
        raise
    say(f"[{todo}/{todo}] done in {time.monotonic() - started:.0f} s")


def _item_arguments(selection: Selection, item: dict) -> list[str]:
    """``run`` arguments naming exactly ``item`` of the selection's plan."""
    one = Selection((item["job"],), selection.profile, (item["seed"],), selection.overrides)
    args = one.arguments()
    if item.get("cell"):
        # A batch job's items of one seed are its cells, in order.
        args += ["--index", str(item.get("cell_index", 0))]
    return args


def records(side: Side) -> list:
    """The run records of ``side``'s plan, read from its runs folder."""
    from mnist_suite.runs import load_run

    return [load_run(side.folder(i)) for i in side.items if side.folder(i).is_dir()]


@contextlib.contextmanager
def in_images(repo: Path, names: tuple[str, str], selection: Selection, runs: Path, say):
    """Both sides confined to containers (``--containers``), yielded ready to run.

    Nothing of either revision is imported or executed on this host. The engine is checked
    first, before anything of a revision is written. Each tree is a copy the suite extracts
    (:mod:`mnist_suite.revision_tree`), never a checkout; its images are built from that copy,
    its wheel in a container (:mod:`mnist_suite.revision_images`). Images come first because
    planning is the revision's code too: its plan runs in its ``numpy`` image (kept in
    ``build/ab/plans``), then the images of the flavours its items need are built. The runs
    folder is mounted (lent to the images' user, for root) while the pair runs.
    """
    from mnist_suite.launch.container import host_data, mounts
    from mnist_suite.revision_images import (
        PLANNER,
        RevisionImages,
        engine_for,
        environment_key,
        flavours_of,
    )
    from mnist_suite.revision_tree import extracted

    # Its tree comes later: the engine is checked before anything of a revision is written.
    revisions = [
        Revision(role, name, _commit(repo, role, name), repo / AB_FOLDER)
        for role, name in zip(ROLES, names, strict=True)
    ]
    engine = engine_for(revisions[0])
    shared = [repo / "build" / "wheelhouse", repo / AB_FOLDER / "wheelhouse"]
    cache = repo / AB_FOLDER / "plans"
    with contextlib.ExitStack() as trees:
        pair, kept = [], []
        for revision in revisions:
            tree = trees.enter_context(extracted(repo, revision, repo / AB_FOLDER))
            revision = dataclasses.replace(revision, path=tree)
            log = repo / AB_FOLDER / "logs" / f"{revision.sha[:12]}-images.log"
            images = RevisionImages(engine, revision, shared, log, repo / AB_FOLDER)
            pair.append(Side(revision, [], runs, None, images))
            kept.append(cached_plan(revision, selection, cache))
        for side, items in zip(pair, kept, strict=True):  # both trees checked before any build
            side.images.missing([PLANNER] if items is None else flavours_of(items))
        for side in pair:
            ask = side.images.plan
            side.items = plan_items(side.revision, selection, cache, lambda a, ask=ask: ask(a, say))
        for side in pair:
            side.images.missing(flavours_of(side.items))
        for side in pair:
            side.images.ensure(flavours_of(side.items), say)
            key = environment_key(side.revision.path, flavours_of(side.items))
            side.runs = _runs_of(runs, side.revision, side.items) / f".images-{key}"
            side.runs.mkdir(parents=True, exist_ok=True)
        with mounts(engine, host_data(), runs) as (user, data):
            for side in pair:
                side.images.mounted = {"user": user, "data": data}
            yield pair


def _close(workers: list[Worker]) -> None:
    for worker in workers:
        worker.close()


@contextlib.contextmanager
def revisions(args, say):
    """Both revisions of ``args`` (the compare command's arguments) ready to run, on this host
    or, with ``--containers``, in their images: yields (the pair, planned for the selection the
    arguments name; that selection; the folder plans are kept in). The warm workers or images
    last until the block ends, so the same ones plan and run further selections
    (:func:`replan`)."""
    from mnist_suite.plan import parse_seeds

    repo = repository()
    if not args.jobs:
        raise ConfigError("comparing revisions needs the jobs to run: --jobs JOB [JOB ...]")
    selection = Selection(
        tuple(args.jobs), args.profile, parse_seeds(args.seeds), tuple(args.overrides)
    )
    runs = Path(args.runs) if args.runs else repo / AB_FOLDER / "runs"
    names = (args.base, args.new)
    workers: list[Worker] = []
    with contextlib.ExitStack() as stack:
        if getattr(args, "containers", False):
            pair = stack.enter_context(in_images(repo, names, selection, runs, say))
        else:
            say(host_note(repo, names))
            stack.callback(_close, workers)
            pair = sides(repo, names, selection, runs, workers)
        note = uncommitted_note(repo, [s.revision for s in pair])
        if note:
            say(note)
        for job in identical_jobs(*pair):
            say(f"identical code for {job}: no change (both revisions share its runs)")
        yield pair, selection, repo / AB_FOLDER / "plans"


def replan(pair: list[Side], selection: Selection, cache: Path, say) -> None:
    """Each side's items for ``selection``, named by its revision's own plan (its warm worker,
    or its planner image) and kept in ``cache``; the side's runs folder stays: runs are keyed
    by code, so those of other selections are found again, never made twice."""
    for side in pair:
        side.items = plan_items(side.revision, selection, cache, _planner(side, say))


def _planner(side: Side, say) -> Callable[[list[str]], object]:
    """Who names ``side``'s plan: its planner image, or its warm worker."""
    if side.images is not None:
        return lambda arguments: side.images.plan(arguments, say)
    return lambda arguments: plan_in_worker(side.worker, arguments)


def compare_revisions(args, say) -> tuple:
    """Plan and run both revisions of ``args`` (the compare command's arguments) on this host
    or, with ``--containers``, in their images; the two sides to compare, each with its runs
    read back."""
    from mnist_suite.compare import side_of_runs

    with revisions(args, say) as (pair, selection, _):
        run_alternately(pair, selection, say)
        return tuple(side_of_runs(s.revision.label, records(s)) for s in pair)
