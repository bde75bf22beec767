"""Run work items in the suite's images with Podman or Docker, every container confined.

The local pool's warm workers, each in a container: ``ENGINE run --interactive … IMAGE worker``
takes ``run JOB --profile P --seed S --index CELL`` items one after another, so a container
starts once per worker, not once per item. The container only wraps the suite's own command
(the image's entry point is ``mnist-suite`` and its ``MNIST_SUITE_RUNS`` is the mounted runs
folder). Items that need TensorFlow run in the ``tf`` image, the others in ``numpy``. Every
container gets the same confinement (:func:`confinement`): a non-root user, no capabilities, no
privilege escalation, a read-only root filesystem with a tmpfs for temporary files, pids and
memory limits and no network; MNIST is mounted read-only.

Nothing at the top imports NumPy (only the standard library and the suite's plan and launch
modules): ``tools/images.py`` uses the engine helpers from an interpreter that has no NumPy.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from mnist_suite.defaults import DATA_VARIABLE, HOST_VARIABLE, IMAGE_ID_VARIABLE, OFFLINE_VARIABLE
from mnist_suite.envinfo import machine_identity
from mnist_suite.errors import ConfigError, MachineError, SuiteError, path_error
from mnist_suite.launch import LaunchOptions, thread_env
from mnist_suite.launch.local import LocalLauncher
from mnist_suite.options import to_argv
from mnist_suite.plan import INDEX_VARIABLES, WorkItem, run_dir

FLAVOURS = ("numpy", "tf", "bench")
IMAGE_REPO = "mnist-suite"
# The local base that `nox -s base_image` builds where no image can be pulled, and the
# Dockerfile's default base, pinned (docker/Dockerfile says how the digest was checked).
LOCAL_BASE = "localhost/mnist-suite-base"
DEFAULT_BASE = (
    "python:3.11-slim-bookworm"
    "@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91"
)
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


def default_base(engine: str) -> str:
    """``$BASE_IMAGE``, else the debootstrapped base if built here, else the pinned official one."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    return LOCAL_BASE if image_exists(engine, LOCAL_BASE) else DEFAULT_BASE


def image_id(engine: str, image: str) -> str:
    """The image's content id (``sha256:…``), recorded with every run made in it."""
    found = _capture([engine, "image", "inspect", "--format", "{{.Id}}", image])
    if found.returncode != 0:
        return ""
    digest = found.stdout.strip()
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


# `run`'s own exit codes (Docker and Podman): the engine failed, or the command could not start.
ENGINE_FAILURES = (125, 126, 127)


def image_code(engine: str, image: str) -> dict[str, str]:
    """Each job's code fingerprint as ``image`` runs it (``mnist-suite list --code`` there).

    SuiteError, in one line, when the image cannot say (an image of code without the option).
    """
    argv = [engine, "run", "--rm", "--network", "none", "--read-only", image, "list", "--code"]
    try:
        found = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise MachineError(f"image {image}: could not ask it for its code ({exc})") from None
    except OSError as exc:  # no such engine is the usage's; a fork that fails the machine's
        raise path_error(
            exc, f"image {image}: could not ask it for its code ({exc})", SuiteError
        ) from None
    code = {}
    for line in found.stdout.splitlines():
        name, _, fingerprint = line.partition(" ")
        if name and fingerprint.strip():
            code[name] = fingerprint.strip()
    if found.returncode != 0 or not code:
        said = (found.stderr.strip().splitlines() or [""])[-1][:200]
        if found.returncode in ENGINE_FAILURES:  # the engine could not start the container
            raise SuiteError(f"image {image}: {Path(engine).name} could not start it: {said}")
        raise SuiteError(
            f"image {image} does not report its code (`mnist-suite list --code` exited "
            f"{found.returncode}{': ' + said if said else ''}): rebuild it with `nox -s image`"
        )
    return code


def check_image_code(engine: str, flavour: str, jobs: set[str]) -> None:
    """Refuse, in one line, an image whose code for ``jobs`` is not this checkout's.

    The launcher plans each item's run folder from its own code and the worker in the image
    writes it from the image's: with other code there, every item would end "done" in a folder
    the launcher never looks at. So the two must agree before anything starts.
    """
    from mnist_suite.fingerprint import for_job_name

    image = image_name(flavour)
    theirs = image_code(engine, image)
    for job in sorted(jobs):
        ours = for_job_name(job)
        if theirs.get(job) != ours:
            raise SuiteError(
                f"image {image} runs other code than this checkout ({job}: "
                f"{theirs.get(job, 'no such job')} there, {ours} here): rebuild it with "
                "`nox -s image`, or run with --local"
            )


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
    interactive: bool = False,
) -> list[str]:
    """The engine command that runs ``mnist-suite COMMAND…`` (or ``entrypoint``) in ``image``.

    ``data`` (an ``mnist.npz`` or an IDX folder) is mounted read-only at ``/data`` and ``runs``
    read-write at ``/runs``, the image's default runs folder.
    """
    data = Path(data).resolve()
    inside = f"{DATA_MOUNT}/{data.name}"
    for flag, path in (("--data", data), ("--runs", Path(runs).resolve())):
        # ``-v SRC:DST:OPTIONS``: a ':' or ',' in SRC would be read as more of the spec.
        if any(c in str(path) for c in ":,\n"):
            raise ConfigError(f"{flag} {path}: a mounted path cannot contain ':' or ','")
    argv = [engine, "run", "--rm", "--init", *confinement(memory=memory, pids=pids), *user]
    if interactive:  # a warm worker reads its items from standard input
        argv += ["--interactive"]
    if name:
        argv += ["--name", name]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    argv += ["-v", f"{data}:{inside}:ro", "-v", f"{Path(runs).resolve()}:{RUNS_MOUNT}"]
    argv += ["-e", f"{DATA_VARIABLE}={inside}", "-e", f"{OFFLINE_VARIABLE}=1"]
    # The machine's host name, not the container's own (its id): runs in two containers on one
    # machine are timed on the same machine (mnist_suite.envinfo.machine_identity).
    argv += ["-e", f"{HOST_VARIABLE}={machine_identity()['host']}"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, image, *command]


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    # lchown, and rglob does not descend into symlinked folders: a link a job left in the runs
    # folder (to /etc/shadow, say) is chowned itself, never what it points to.
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, gid)


@contextmanager
def lent_to_container(
    runs: Path, uid: int = CONTAINER_UID, gid: int = CONTAINER_GID
) -> Iterator[Path]:
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


# --- the launcher --------------------------------------------------------------------------


def host_data() -> Path:
    """The verified MNIST on the host (fetched into the cache on first use), to mount."""
    from mnist_suite.data import load_mnist

    return Path(load_mnist().location)


def container_name(number: int) -> str:
    """The name of this launching process's ``number``-th worker container (``ENGINE stop``)."""
    return f"mnist-suite-{os.getpid()}-w{number}"


class ContainerLauncher(LocalLauncher):
    """The local pool with each worker in a container of its items' image (``run_argv``).

    Same semantics as the local pool (workers, threads per worker, logs, interrupts); only the
    worker's command differs. ``env`` adds variables inside every container.
    """

    def __init__(
        self,
        engine: str | None = None,
        *,
        memory: str = DEFAULT_MEMORY,
        pids: int = DEFAULT_PIDS,
        env: Mapping[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
    ):
        super().__init__(echo=echo)
        self.engine, self.memory, self.pids = engine, memory, pids
        self.env = dict(env or {})
        self._threads = 1

    def launch(self, items: list[WorkItem], options: LaunchOptions) -> dict[int, int]:
        confinement(memory=self.memory, pids=self.pids)  # a bad limit fails before anything runs
        engine = self.engine or require_engine()
        flavours = sorted({item.flavour for item in items})
        for flavour in flavours:
            if not image_exists(engine, image_name(flavour)):
                raise SuiteError(f"no image {image_name(flavour)}: build it with `nox -s image`")
            check_image_code(engine, flavour, {i.job for i in items if i.flavour == flavour})
        runs = Path(options.runs)
        runs.mkdir(parents=True, exist_ok=True)
        data = Path(options.data) if options.data is not None else host_data()
        with mounts(engine, data, runs) as (user, mounted):
            self._run = {
                "engine": engine, "user": user, "data": mounted, "runs": runs,
                "ids": {f: image_id(engine, image_name(f)) for f in flavours},
            }  # fmt: skip
            return super().launch(items, options)

    def ran(self, run, proc, attempt) -> bool:
        """The container's pid is not the engine client's: a run started before this attempt
        was found, not written, by it."""
        try:
            started = datetime.fromisoformat(run.status.get("started_at", ""))
        except (TypeError, ValueError):
            return True
        return started >= attempt.started

    def environment(self, threads: int) -> dict[str, str]:
        """The engine client's environment; the thread settings go into each container."""
        self._threads = threads
        return {k: v for k, v in os.environ.items() if k not in INDEX_VARIABLES}

    def worker_kind(self, item: WorkItem) -> str:
        """A worker runs the items of its image only."""
        return item.flavour

    def worker_command(self, kind: str, options: LaunchOptions, number: int) -> list[str]:
        """A warm worker in a container of ``kind``'s image (one container per worker)."""
        run = self._run
        env = {**thread_env(self._threads), **self.env, IMAGE_ID_VARIABLE: run["ids"][kind]}
        return run_argv(
            run["engine"], image_name(kind), ["worker"], data=run["data"], runs=run["runs"],
            user=run["user"], name=container_name(number), env=env, memory=self.memory,
            pids=self.pids, interactive=True,
        )  # fmt: skip

    def item_argv(self, item: WorkItem, options: LaunchOptions) -> list[str]:
        """The item's arguments inside the container (its runs folder is the image's)."""
        return [*item.argv(), *to_argv(options, ("force", "reuse_outdated"))]


def check_runs(
    runs: Path, items: Sequence[WorkItem], *, in_container: bool = False, uid: int | None = None
) -> list[str]:
    """Problems with the run folders ``items`` should have left in ``runs`` (empty: all good).

    Every item must be ``done`` (or ``diverged``, a recorded outcome) with its metrics, history
    and TensorBoard events; with ``in_container`` its record must name the item's image; every
    file must belong to ``uid``.
    """
    from mnist_suite.runs import load_run

    problems = []
    for item in items:
        path = run_dir(runs, item)
        where = f"{item.job} {item.cell}".strip()
        if not (path / "config.json").is_file():
            problems.append(f"{where}: no run folder {path}")
            continue
        run = load_run(path)
        if run.state not in ("done", "diverged"):
            problems.append(f"{where}: state {run.state} ({run.status.get('message', '')})")
            continue
        if not run.metrics:
            problems.append(f"{where}: no metrics.json")
        if run.state == "done" and not run.history:
            problems.append(f"{where}: empty history.jsonl")
        if not list((path / "tb").glob("events.out.tfevents.*")):
            problems.append(f"{where}: no TensorBoard event file in {path / 'tb'}")
        # The image name, not machine_info.in_container: a CI host may itself be a container.
        image = run.envelope["machine_info"].get("image")
        if in_container and image != image_name(item.flavour):
            problems.append(f"{where}: ran in image {image!r}, not {image_name(item.flavour)}")
        if uid is not None:
            foreign = [p for p in [path, *path.rglob("*")] if p.lstat().st_uid != uid]
            if foreign:
                problems.append(f"{where}: {len(foreign)} files not owned by uid {uid}")
    return problems
