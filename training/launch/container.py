"""Run work items in the suite's images with Podman or Docker, every container confined.

An item runs as ``ENGINE run … IMAGE run JOB --profile P --seed S --index CELL``: the container
only wraps the suite's own command (the image's entry point is ``mnist-suite`` and its
``MNIST_SUITE_RUNS`` is the mounted runs folder). Items that need TensorFlow run in the ``tf``
image, the others in ``numpy``. Every container gets the same confinement (:func:`confinement`):
a non-root user, no capabilities, no privilege escalation, a read-only root filesystem with a
tmpfs for temporary files, pids and memory limits and no network; MNIST is mounted read-only.

Only the standard library is imported at the top: ``tools/images.py`` uses the engine helpers
from an interpreter that has no NumPy.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from training.errors import ConfigError, SuiteError

if TYPE_CHECKING:
    from training.plan import WorkItem

FLAVOURS = ("numpy", "tf", "bench")
IMAGE_REPO = "mnist-suite"
# The images' USER (numeric, so Kubernetes' runAsNonRoot can check it). Not 1000: when root
# lends the runs folder to this uid, no ordinary host account should gain access to it.
CONTAINER_UID = 10001
CONTAINER_GID = 10001
DATA_MOUNT = "/data"
RUNS_MOUNT = "/runs"
# The biggest job's peak (measured in the container: see the README) is well under this; raise
# it with --memory for larger custom configs.
DEFAULT_MEMORY = "8g"
# TensorFlow starts about two threads per core and a few more per pool; threads count as pids.
DEFAULT_PIDS = 1024
TMP_SIZE = "512m"
# Forwarded into containers so thread settings (recorded with every run) match the host's.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
EXIT_INTERRUPTED = 130
_MEMORY = re.compile(r"^[1-9]\d*[kmg]?$", re.IGNORECASE)


def image_name(flavour: str) -> str:
    """Local tag of an image flavour, e.g. ``mnist-suite:numpy``."""
    if flavour not in FLAVOURS:
        raise ConfigError(
            f"unknown image flavour {flavour!r} (expected one of {', '.join(FLAVOURS)})"
        )
    return f"{IMAGE_REPO}:{flavour}"


# --- the engine ----------------------------------------------------------------------------


def detect_engine(
    env: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    docker_answers: Callable[[], bool] | None = None,
) -> str | None:
    """``$CONTAINER_ENGINE``, else ``podman``, else ``docker`` if its daemon answers, else None."""
    env = os.environ if env is None else env
    chosen = env.get("CONTAINER_ENGINE", "").strip()
    if chosen:
        if which(chosen) is None:
            raise SuiteError(
                f"CONTAINER_ENGINE={chosen}: not found on PATH (expected podman or docker)"
            )
        return chosen
    if which("podman"):
        return "podman"
    if which("docker"):
        answers = docker_answers or _docker_answers
        if answers():
            return "docker"
    return None


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def require_engine() -> str:
    engine = detect_engine()
    if engine is None:
        raise SuiteError("no container engine: install podman (or docker), or set CONTAINER_ENGINE")
    return engine


def _capture(argv: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True)


def is_rootless(engine: str) -> bool:
    """Does this Podman run without root (then ``--userns=keep-id`` maps the caller)?"""
    if Path(engine).name != "podman":
        return False
    info = _capture([engine, "info", "--format", "{{.Host.Security.Rootless}}"])
    return info.returncode == 0 and info.stdout.strip() == "true"


def image_exists(engine: str, image: str) -> bool:
    probe = "exists" if Path(engine).name == "podman" else "inspect"
    return _capture([engine, "image", probe, image]).returncode == 0


def image_id(engine: str, image: str) -> str:
    """The image's content id (``sha256:…``), recorded with every run made in it."""
    found = _capture([engine, "image", "inspect", "--format", "{{.Id}}", image])
    if found.returncode != 0:
        return ""
    digest = found.stdout.strip()
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


# --- one container -------------------------------------------------------------------------


def check_memory(text: str) -> str:
    """A memory limit as the engines take it (``8g``, ``512m``); anything else is a ConfigError."""
    if not _MEMORY.match(text.strip()):
        raise ConfigError(f"--memory {text!r}: expected a size like 8g or 512m")
    return text.strip().lower()


def confinement(*, memory: str = DEFAULT_MEMORY, pids: int = DEFAULT_PIDS) -> list[str]:
    """Engine options that confine a job's container (the user is :func:`user_args`' business).

    No capabilities and no way to gain any (setuid binaries included); nothing written outside
    the mounts and a size-capped ``/tmp``; a bounded number of processes and threads; memory
    capped with no swap beyond it; no network (MNIST is mounted, nothing is downloaded).
    """
    if pids < 1:
        raise ConfigError(f"--pids-limit {pids}: expected a positive number")
    memory = check_memory(memory)
    return [
        "--cap-drop=ALL",
        "--security-opt", "no-new-privileges",
        "--read-only",
        "--tmpfs", f"/tmp:rw,nosuid,nodev,size={TMP_SIZE}",
        "--pids-limit", str(pids),
        "--memory", memory,
        "--memory-swap", memory,
        "--network", "none",
    ]  # fmt: skip


def user_args(rootless: bool, uid: int | None = None, gid: int | None = None) -> list[str]:
    """Who a job runs as: never root.

    Rootless Podman maps the caller in (``--userns=keep-id``); a non-root caller of a rootful
    engine runs as its own numeric ids; root gets no option at all, so the image's non-root
    ``USER`` stands and the runs folder is lent to it (:func:`lent_to_container`).
    """
    if rootless:
        return ["--userns=keep-id"]
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    return [] if uid == 0 else ["--user", f"{uid}:{gid}"]


def run_argv(
    engine: str,
    image: str,
    command: Sequence[str],
    *,
    data: Path,
    runs: Path,
    user: Sequence[str] = (),
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    memory: str = DEFAULT_MEMORY,
    pids: int = DEFAULT_PIDS,
    entrypoint: str | None = None,
) -> list[str]:
    """The engine command that runs ``mnist-suite COMMAND…`` (or ``entrypoint``) in ``image``.

    ``data`` (an ``mnist.npz`` or an IDX folder) is mounted read-only at ``/data`` and ``runs``
    read-write at ``/runs``, the image's default runs folder.
    """
    data = Path(data).resolve()
    inside = f"{DATA_MOUNT}/{data.name}"
    argv = [engine, "run", "--rm", "--init", *confinement(memory=memory, pids=pids), *user]
    if name:
        argv += ["--name", name]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    argv += ["-v", f"{data}:{inside}:ro", "-v", f"{Path(runs).resolve()}:{RUNS_MOUNT}"]
    argv += ["-e", f"MNIST_SUITE_DATA={inside}", "-e", "MNIST_SUITE_OFFLINE=1"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, image, *command]


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, gid)


@contextmanager
def lent_to_container(runs: Path, uid: int = CONTAINER_UID, gid: int = CONTAINER_GID):
    """Hand ``runs`` to the container's uid while jobs run, then back to its owner.

    For root with a rootful engine: rather than run jobs as root, the folder is chowned to the
    image's user and, afterwards, every file in it to the folder's own owner again.
    """
    owner = runs.stat()
    _chown_tree(runs, uid, gid)
    try:
        yield runs
    finally:
        _chown_tree(runs, owner.st_uid, owner.st_gid)


def _world_readable(path: Path) -> bool:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        needed = stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0)
        if p.stat().st_mode & needed != needed:
            return False
    return True


@contextmanager
def readable_data(data: Path, uid: int = CONTAINER_UID) -> Iterator[Path]:
    """``data`` itself if the container's user can read it, else a temporary copy it owns.

    The verified cache file is private to its owner (0600); a job run under another uid reads a
    copy, removed afterwards.
    """
    if _world_readable(data):
        yield data
        return
    with tempfile.TemporaryDirectory(prefix="mnist-suite-data-") as tmp:
        os.chmod(tmp, 0o755)
        copy = Path(tmp) / data.name
        if data.is_dir():
            shutil.copytree(data, copy)
        else:
            shutil.copy2(data, copy)
        _chown_tree(copy, uid, os.getgid())
        yield copy


@contextmanager
def mounts(engine: str, data: Path, runs: Path) -> Iterator[tuple[list[str], Path]]:
    """(user options, data to mount) for jobs that write to ``runs``: never root inside.

    With rootless Podman or a non-root caller the job runs with the caller's ids and mounts its
    files as they are; for root, the runs folder is lent to the image's user meanwhile.
    """
    user = user_args(is_rootless(engine))
    if user:
        yield user, data
        return
    with readable_data(data) as mounted, lent_to_container(runs):
        yield user, mounted


# --- a pool of containers ------------------------------------------------------------------


@dataclass
class ItemResult:
    index: int
    name: str
    where: str  # image name, or "local"
    code: int
    seconds: float


def thread_env(workers: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Thread settings for each of ``workers`` jobs: the caller's, else the cores shared out."""
    env = os.environ if env is None else env
    chosen = {k: env[k] for k in THREAD_VARS if k in env}
    if chosen or workers <= 1:
        return chosen
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return {k: threads for k in THREAD_VARS if k != "TF_NUM_INTEROP_THREADS"}


def run_pool(
    items: Sequence[WorkItem],
    argv_for: Callable[[WorkItem], tuple[str, list[str]]],
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    grace: float = 5.0,
    poll: float = 0.2,
    echo: Callable[..., None] = print,
) -> list[ItemResult]:
    """Run each item's command, ``workers`` at a time; a failure does not stop the rest.

    ``argv_for(item)`` gives (where, argv); ``env`` replaces the environment. An item that ends
    interrupted (exit 130, e.g. its container was stopped) stops the pool: nothing more is
    started. So does an interrupt of this process, and the running commands end ``interrupted``
    (a terminal's Ctrl-C reaches them directly and the engines pass it into the container;
    SIGTERM to this process is passed on at once, and ``grace`` seconds after a Ctrl-C to what
    still runs). Results are in item order.
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers}: expected 1 or more")
    queue = deque(items)
    running: dict[subprocess.Popen, tuple[WorkItem, str, float]] = {}
    results: list[ItemResult] = []

    def finish(proc: subprocess.Popen) -> None:
        item, where, start = running.pop(proc)
        seconds = round(time.perf_counter() - start, 1)
        results.append(ItemResult(item.index, item.name, where, proc.returncode, seconds))
        echo(f"== [{item.index}] {item.name} in {where}: exit {proc.returncode} after {seconds} s")
        if proc.returncode == EXIT_INTERRUPTED:
            queue.clear()

    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    # Only the main thread may handle signals (a pool in another thread leaves SIGTERM alone).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if main else None
    try:
        while queue or running:
            while queue and len(running) < workers:
                item = queue.popleft()
                where, argv = argv_for(item)
                echo("$ " + " ".join(argv))
                running[subprocess.Popen(argv, env=env)] = (item, where, time.perf_counter())
            for proc in [p for p in running if p.poll() is not None]:
                finish(proc)
            time.sleep(poll)
    except KeyboardInterrupt as exc:
        queue.clear()
        deadline = time.monotonic() + (0 if exc.args == ("SIGTERM",) else grace)
        while any(p.poll() is None for p in running) and time.monotonic() < deadline:
            time.sleep(poll)
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in list(running):
            proc.wait()
            finish(proc)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    return sorted(results, key=lambda r: r.index)


def exit_code(results: Sequence[ItemResult]) -> int:
    """130 if interrupted, else the first failing item's code, else 0."""
    codes = [r.code for r in results]
    if EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    return next((c for c in codes if c != 0), 0)


def host_data() -> Path:
    """The verified MNIST on the host (fetched into the cache on first use), to mount."""
    from training.data import load_mnist

    return Path(load_mnist().location)


def run_items(
    items: Sequence[WorkItem],
    *,
    runs: Path,
    workers: int = 1,
    engine: str | None = None,
    memory: str = DEFAULT_MEMORY,
    pids: int = DEFAULT_PIDS,
    data: Path | None = None,
    env: Mapping[str, str] | None = None,
    echo: Callable[..., None] = print,
) -> list[ItemResult]:
    """Run every item in its image, ``workers`` containers at a time, into the ``runs`` folder.

    ``env`` adds variables inside every container (e.g. ``JOB_COMPLETION_INDEX``).
    """
    confinement(memory=memory, pids=pids)  # a bad limit fails before anything starts
    engine = engine or require_engine()
    flavours = sorted({item.flavour for item in items})
    for flavour in flavours:
        if not image_exists(engine, image_name(flavour)):
            raise SuiteError(f"no image {image_name(flavour)}: build it with `nox -s image`")
    ids = {f: image_id(engine, image_name(f)) for f in flavours}
    runs = Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    shared = {**thread_env(workers), **(env or {})}
    with mounts(engine, host_data() if data is None else Path(data), runs) as (user, mounted):

        def argv_for(item: WorkItem) -> tuple[str, list[str]]:
            image = image_name(item.flavour)
            argv = run_argv(
                engine, image, item.argv(), data=mounted, runs=runs, user=user,
                name=f"mnist-suite-{os.getpid()}-{item.index}", memory=memory, pids=pids,
                env={**shared, "MNIST_SUITE_IMAGE_ID": ids[item.flavour]},
            )  # fmt: skip
            return image, argv

        return run_pool(items, argv_for, workers=workers, echo=echo)


def run_items_locally(
    items: Sequence[WorkItem], *, runs: Path, workers: int = 1, echo: Callable[..., None] = print
) -> list[ItemResult]:
    """The same pool without an engine: ``python -m training run …`` per item."""
    env = {**os.environ, **thread_env(workers), "MNIST_SUITE_RUNS": str(runs)}

    def argv_for(item: WorkItem) -> tuple[str, list[str]]:
        return "local", [sys.executable, "-m", "training", *item.argv()]

    return run_pool(items, argv_for, workers=workers, env=env, echo=echo)


def summary(results: Sequence[ItemResult]) -> str:
    lines = [f"{'item':>5} {'run':<36} {'where':<18} {'exit':>4} {'seconds':>8}"]
    lines += [
        f"{r.index:>5} {r.name:<36} {r.where:<18} {r.code:>4} {r.seconds:>8.1f}" for r in results
    ]
    return "\n".join(lines)


def check_runs(
    runs: Path, items: Sequence[WorkItem], *, in_container: bool = False, uid: int | None = None
) -> list[str]:
    """Problems with the run folders ``items`` should have left in ``runs`` (empty: all good).

    Every item must be ``done`` (or ``diverged``, a recorded outcome) with its metrics, history
    and TensorBoard events; with ``in_container`` its record must name the item's image; every
    file must belong to ``uid``.
    """
    from training.runs import load_run

    problems = []
    for item in items:
        path = Path(runs) / item.job / item.run_id
        where = f"{item.job} {item.cell}".strip()
        if not (path / "config.json").is_file():
            problems.append(f"{where}: no run folder {path}")
            continue
        run = load_run(path)
        if run["state"] not in ("done", "diverged"):
            problems.append(f"{where}: state {run['state']} ({run['status'].get('message', '')})")
            continue
        if not run["metrics"]:
            problems.append(f"{where}: no metrics.json")
        if run["state"] == "done" and not run["history"]:
            problems.append(f"{where}: empty history.jsonl")
        if not list((path / "tb").glob("events.out.tfevents.*")):
            problems.append(f"{where}: no TensorBoard event file in {path / 'tb'}")
        # The image name, not machine_info.in_container: a CI host may itself be a container.
        image = run["config"].get("machine_info", {}).get("image")
        if in_container and image != image_name(item.flavour):
            problems.append(f"{where}: ran in image {image!r}, not {image_name(item.flavour)}")
        if uid is not None:
            foreign = [p for p in [path, *path.rglob("*")] if p.lstat().st_uid != uid]
            if foreign:
                problems.append(f"{where}: {len(foreign)} files not owned by uid {uid}")
    return problems


# --- command line (what `nox -s train` runs) --------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.launch.container", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("train", "run jobs' work items, each in its image (or --local)"),
        ("check", "check the run folders of jobs' work items"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("jobs", nargs="*", help="job names (default: every job)")
        p.add_argument("--profile", default="full", choices=("quick", "full"))
        p.add_argument("--seeds", default=None, help="seeds, e.g. 0-4 or 0,3,7 (default: 0)")
        p.add_argument("--seed", type=int, default=None, help="one seed")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--runs", type=Path, default=None, help="runs folder")
        p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
        if name == "train":
            p.add_argument("--local", action="store_true", help="run here, not in containers")
            p.add_argument("--workers", type=int, default=1, help="items at a time (default 1)")
            p.add_argument("--memory", default=DEFAULT_MEMORY, help="per container (default 8g)")
            p.add_argument("--pids-limit", type=int, default=DEFAULT_PIDS, dest="pids")
            p.add_argument("--check", action="store_true", help="then check the run folders")
        else:
            p.add_argument("--in-container", action="store_true", help="require container records")
    return parser


def _plan(args: argparse.Namespace) -> list[WorkItem]:
    from training.jobs import all_jobs
    from training.plan import build_plan, parse_seeds

    if args.seeds is not None and args.seed is not None:
        raise ConfigError("--seeds and --seed: give one of them")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else (args.seed or 0,)
    jobs = args.jobs or list(all_jobs())
    return build_plan(jobs, profile=args.profile, seeds=seeds, overrides=tuple(args.set))


def _runs_folder(args: argparse.Namespace) -> Path:
    if args.out is not None:
        print("warning: --out is deprecated here, use --runs", file=sys.stderr)
    return args.runs or args.out or Path(os.environ.get("MNIST_SUITE_RUNS", "runs"))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        runs = _runs_folder(args)
        items = _plan(args)
        code = 0
        in_container = args.in_container if args.command == "check" else not args.local
        if args.command == "train":
            if args.check and args.set:
                raise ConfigError("--check checks the profiles' runs: leave out --set")
            if args.local:
                results = run_items_locally(items, runs=runs, workers=args.workers)
            else:
                results = run_items(
                    items, runs=runs, workers=args.workers, memory=args.memory, pids=args.pids
                )
            print(summary(results))
            code = exit_code(results)
            if not args.check:
                return code
        problems = check_runs(runs, items, in_container=in_container, uid=os.getuid())
        for problem in problems:
            print(f"problem: {problem}")
        print(f"checked {runs}: {len(items)} items, {len(problems)} problems")
        return max(code, 1 if problems else 0)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
