"""Build the CPU images and run jobs in them with Podman or Docker.

The container only wraps the suite's own command: a job runs as
``ENGINE run --rm --network none … IMAGE run JOB …`` with the verified MNIST mounted read-only
and the runs folder read-write. Jobs that need TensorFlow run in the ``tf`` image, the others
in ``numpy`` (which has no TensorFlow). Used by the Nox sessions (``python -m training.containers
…``); the module imports only the standard library at the top, so building needs no venv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from training.errors import SuiteError

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
WHEELHOUSE = BUILD / "wheelhouse"
SUITE_WHEELS = BUILD / "suite"
ROOTFS = BUILD / "rootfs"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
LOCKS = {
    "numpy": ROOT / "docker" / "requirements-numpy.txt",
    "tf": ROOT / "docker" / "requirements-tf.txt",
}
NUMPY_LOCK_INPUT = ROOT / "docker" / "requirements-numpy.in"

FLAVOURS = ("numpy", "tf")
IMAGE_REPO = "mnist-suite"
BASE_NAME = "mnist-suite-base"
DEFAULT_BASE = "python:3.11-slim-bookworm"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Debian bookworm has glibc 2.36: every manylinux wheel up to that tag runs on either base.
WHEEL_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
TF_PACKAGES = ("tensorflow", "tensorflow-cpu")
# Forwarded into containers so thread settings (recorded with every run) match the host's.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DATA_MOUNT = "/data"
RUNS_MOUNT = "/runs"


def image_name(flavour: str) -> str:
    """Local tag of an image flavour, e.g. ``mnist-suite:numpy``."""
    if flavour not in FLAVOURS:
        raise SuiteError(
            f"unknown image flavour {flavour!r} (expected one of {', '.join(FLAVOURS)})"
        )
    return f"{IMAGE_REPO}:{flavour}"


def flavour_for(job) -> str:
    """The image a job runs in: ``tf`` if it uses TensorFlow, else ``numpy``."""
    return "tf" if job.uses_tensorflow else "numpy"


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


PODMAN_CONF = ROOT / "docker" / "containers.conf"


def use_repo_podman_conf(env: dict[str, str] | None = None) -> bool:
    """Point ``CONTAINERS_CONF`` at the repo's settings when Podman would otherwise fail here.

    Podman on these machines needs runc (crun cannot handle hybrid cgroups) and default ulimits
    at or below the host's hard limits; the repo's containers.conf sets both. It is used only if
    the variable is unset and runc is installed, so a user's own configuration always wins.
    """
    env = os.environ if env is None else env
    if env.get("CONTAINERS_CONF") or not shutil.which("podman") or not shutil.which("runc"):
        return False
    env["CONTAINERS_CONF"] = str(PODMAN_CONF)
    return True


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


def user_args(
    engine: str, rootless: bool, uid: int | None = None, gid: int | None = None
) -> list[str]:
    """Options that make files written in the container belong to the calling user."""
    if rootless:
        return ["--userns=keep-id"]
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    return ["--user", f"{uid}:{gid}"]


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
) -> list[str]:
    """The engine command that runs ``mnist-suite COMMAND…`` in ``image``.

    ``data`` (an ``mnist.npz`` or an IDX folder) is mounted read-only and ``runs`` read-write;
    the network is off and MNIST is read only from the mount.
    """
    data = Path(data).resolve()
    inside = f"{DATA_MOUNT}/{data.name}"
    argv = [engine, "run", "--rm", "--init", "--network", "none", *user]
    if name:
        argv += ["--name", name]
    argv += ["-v", f"{data}:{inside}:ro", "-v", f"{Path(runs).resolve()}:{RUNS_MOUNT}"]
    argv += ["-e", f"MNIST_SUITE_DATA={inside}", "-e", "MNIST_SUITE_OFFLINE=1"]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, image, *command]


def wait_forwarding(proc: subprocess.Popen, grace: float = 5.0) -> int:
    """Wait for ``proc``; pass an interrupt on as SIGTERM so the run inside ends ``interrupted``.

    A terminal's Ctrl-C reaches the engine too (it proxies signals into the container), so the
    child gets ``grace`` seconds to end on its own before it is sent SIGTERM.
    """

    def on_term(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return proc.wait()
    except KeyboardInterrupt as exc:
        if exc.args == ("SIGTERM",):
            proc.send_signal(signal.SIGTERM)
        else:
            try:
                return proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class JobResult:
    job: str
    where: str  # image name, or "local"
    code: int
    seconds: float


def run_batch(
    jobs: Sequence[str], run_one: Callable[[str], tuple[str, int]], echo=print
) -> list[JobResult]:
    """Run every job with ``run_one(job) -> (where, exit code)``; a failure does not stop the rest.

    An interrupt (exit 130) does: the remaining jobs are not started.
    """
    results = []
    for job in jobs:
        start = time.perf_counter()
        where, code = run_one(job)
        results.append(JobResult(job, where, code, round(time.perf_counter() - start, 1)))
        echo(f"== {job} in {where}: exit {code} after {results[-1].seconds:.1f} s", flush=True)
        if code == 130:
            break
    return results


def batch_exit_code(results: Iterable[JobResult]) -> int:
    """130 if interrupted, else the first failing job's code, else 0."""
    codes = [r.code for r in results]
    if 130 in codes:
        return 130
    return next((c for c in codes if c != 0), 0)


def host_data() -> Path:
    """The verified MNIST on the host (fetched into the cache on first use), to mount."""
    from training.data import load_mnist

    return Path(load_mnist().location)


def job_names(selected: Sequence[str]) -> list[str]:
    """The named jobs (validated) or, if none, every registered job."""
    from training.jobs import all_jobs, get_job

    if not selected:
        return list(all_jobs())
    return [get_job(name).name for name in selected]


def train(
    selected: Sequence[str],
    *,
    profile: str,
    out: Path,
    seed: int = 0,
    local: bool = False,
    engine: str | None = None,
    extra: Sequence[str] = (),
) -> int:
    """Run jobs one after another, each in its image (or here with ``local``); print a summary."""
    from training.jobs import get_job

    names = job_names(selected)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not local:
        engine = engine or require_engine()
        for flavour in {flavour_for(get_job(n)) for n in names}:
            if not image_exists(engine, image_name(flavour)):
                raise SuiteError(f"no image {image_name(flavour)}: build it with `nox -s image`")
        user = user_args(engine, is_rootless(engine))
        data = host_data()
        env = {k: os.environ[k] for k in THREAD_VARS if k in os.environ}
        image_ids = {f: image_id(engine, image_name(f)) for f in FLAVOURS}

    def run_one(name: str) -> tuple[str, int]:
        command = ["run", name, "--profile", profile, "--seed", str(seed), *extra]
        if local:
            argv = [sys.executable, "-m", "training", *command, "--out", str(out)]
            where = "local"
        else:
            where = image_name(flavour_for(get_job(name)))
            container = f"mnist-suite-{name}-{os.getpid()}"
            argv = run_argv(
                engine,
                where,
                [*command, "--out", RUNS_MOUNT],
                data=data,
                runs=out,
                user=user,
                name=container,
                env={**env, "MNIST_SUITE_IMAGE_ID": image_ids[flavour_for(get_job(name))]},
            )
        print("$ " + " ".join(argv), flush=True)
        return where, wait_forwarding(subprocess.Popen(argv))

    results = run_batch(names, run_one)
    print(f"{'job':<24} {'where':<18} {'exit':>4} {'seconds':>8}")
    for r in results:
        print(f"{r.job:<24} {r.where:<18} {r.code:>4} {r.seconds:>8.1f}")
    return batch_exit_code(results)


def check_runs(
    out: Path,
    selected: Sequence[str],
    *,
    profile: str,
    seed: int = 0,
    in_container: bool = False,
    uid: int | None = None,
) -> list[str]:
    """Problems with the run folders the jobs should have left in ``out`` (empty: all good).

    Every cell must be ``done`` (or ``diverged``, a recorded outcome) with its metrics, history
    and TensorBoard events; with ``in_container`` its record must name the job's image; every file
    must belong to ``uid``.
    """
    from training.jobs import get_job
    from training.runs import load_run

    problems = []
    for name in job_names(selected):
        job = get_job(name)
        for label, config in job.expand(job.resolve(profile)):
            path = Path(out) / job.name / job.run_id(label, config, profile, seed)
            where = f"{job.name} {label}".strip()
            if not (path / "config.json").is_file():
                problems.append(f"{where}: no run folder {path}")
                continue
            run = load_run(path)
            if run["state"] not in ("done", "diverged"):
                problems.append(
                    f"{where}: state {run['state']} ({run['status'].get('message', '')})"
                )
                continue
            if not run["metrics"]:
                problems.append(f"{where}: no metrics.json")
            if run["state"] == "done" and not run["history"]:
                problems.append(f"{where}: empty history.jsonl")
            if not list((path / "tb").glob("events.out.tfevents.*")):
                problems.append(f"{where}: no TensorBoard event file in {path / 'tb'}")
            # The image name, not machine_info.in_container: a CI host may itself be a container.
            image = run["config"].get("machine_info", {}).get("image")
            if in_container and image != image_name(flavour_for(job)):
                problems.append(
                    f"{where}: ran in image {image!r}, not {image_name(flavour_for(job))}"
                )
            if uid is not None:
                foreign = [p for p in [path, *path.rglob("*")] if p.stat().st_uid != uid]
                if foreign:
                    problems.append(f"{where}: {len(foreign)} files not owned by uid {uid}")
    return problems


def first_step_seconds(run_dir: Path, launched: float) -> float:
    """Seconds from ``launched`` (epoch time) to the run's first history row."""
    from training.files import read_json_object as read_json
    from training.runs import read_history

    status = read_json(run_dir / "status.json") or {}
    rows = read_history(run_dir / "history.jsonl")
    if not rows or not status.get("started_at"):
        raise SuiteError(f"{run_dir}: no history row to time the first step by")
    started = datetime.fromisoformat(status["started_at"]).timestamp()
    return started + rows[0]["time"] - launched


def overhead(job: str, *, profile: str, engine: str | None = None) -> dict:
    """Container start-to-first-step minus the same run started locally (fresh runs folders)."""
    from training.jobs import get_job

    engine = engine or require_engine()
    spec = get_job(job)
    image = image_name(flavour_for(spec))
    data = host_data()
    figures = {"job": job, "profile": profile, "image": image}
    with tempfile.TemporaryDirectory(prefix="mnist-suite-overhead-") as tmp:
        for where in ("local", "container"):
            out = Path(tmp) / where
            out.mkdir()
            command = ["run", job, "--profile", profile]
            if where == "local":
                argv = [sys.executable, "-m", "training", *command, "--out", str(out)]
                env = {**os.environ, "MNIST_SUITE_DATA": str(data), "MNIST_SUITE_OFFLINE": "1"}
            else:
                user = user_args(engine, is_rootless(engine))
                argv = run_argv(
                    engine, image, [*command, "--out", RUNS_MOUNT], data=data, runs=out, user=user
                )
                env = None
            launched = time.time()
            proc = subprocess.run(argv, capture_output=True, text=True, env=env)
            total = time.time() - launched
            if proc.returncode != 0:
                raise SuiteError(
                    f"{where} run of {job} exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
                )
            run_dir = Path(proc.stdout.strip().splitlines()[-1].split()[1])
            if where == "container":
                run_dir = out / run_dir.relative_to(RUNS_MOUNT)
            figures[f"{where}_first_step_s"] = round(first_step_seconds(run_dir, launched), 2)
            figures[f"{where}_total_s"] = round(total, 2)
    figures["overhead_s"] = round(
        figures["container_first_step_s"] - figures["local_first_step_s"], 2
    )
    return figures


# --- building ------------------------------------------------------------------------------


def _run(argv: Sequence[str], **kwargs) -> None:
    print("$ " + " ".join(map(str, argv)), flush=True)
    code = subprocess.run([str(a) for a in argv], **kwargs).returncode
    if code != 0:
        raise SuiteError(
            f"{Path(str(argv[0])).name} exited {code}: {' '.join(map(str, argv[:4]))} …"
        )


def image_exists(engine: str, image: str) -> bool:
    return (
        _capture(
            [engine, "image", "exists" if Path(engine).name == "podman" else "inspect", image]
        ).returncode
        == 0
    )


def image_id(engine: str, image: str) -> str:
    """The image's content digest (``sha256:…``), recorded with every run made in it."""
    found = _capture([engine, "image", "inspect", "--format", "{{.Id}}", image])
    if found.returncode != 0:
        return ""
    digest = found.stdout.strip()
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


def image_size_mb(engine: str, image: str) -> float:
    found = _capture([engine, "image", "inspect", "--format", "{{.Size}}", image])
    if found.returncode != 0:
        raise SuiteError(f"no image {image}")
    return round(int(found.stdout.strip()) / 1e6, 1)


def debian_mirror(apt_dir: Path = Path("/etc/apt"), suite: str = DEBIAN_SUITE) -> str:
    """The Debian archive apt already uses for ``suite`` (``$DEBIAN_MIRROR`` overrides it)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            # deb822 stanzas: "URIs: …" and "Suites: …" lines, separated by blank lines.
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, flags=re.M))
                if (
                    "deb" in fields.get("Types", "").split()
                    and suite in fields.get("Suites", "").split()
                ):
                    return fields.get("URIs", "").split()[0]
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                    return parts[1]
    return DEFAULT_MIRROR


def default_base(engine: str) -> str:
    """``$BASE_IMAGE``, else the debootstrapped base if built here, else the official slim image."""
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    local = f"localhost/{BASE_NAME}"
    return local if image_exists(engine, local) else DEFAULT_BASE


def build_base(engine: str, *, mirror: str | None = None, force: bool = False) -> str:
    """Build ``localhost/mnist-suite-base`` (Debian bookworm + python3) with debootstrap."""
    name = f"localhost/{BASE_NAME}"
    if image_exists(engine, name) and not force:
        print(f"{name} exists (--force rebuilds it)")
        return name
    if shutil.which("debootstrap") is None:
        raise SuiteError("debootstrap not found (apt-get install debootstrap)")
    mirror = mirror or debian_mirror()
    if ROOTFS.exists():
        shutil.rmtree(ROOTFS)
    ROOTFS.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            DEBIAN_SUITE,
            ROOTFS,
            mirror,
        ]
    )
    # What a slim image leaves out: package caches, docs, translations; and the host's identity.
    for rel in (
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ):
        target = ROOTFS / rel
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
    for rel in ("etc/hostname", "etc/resolv.conf"):
        (ROOTFS / rel).unlink(missing_ok=True)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
        f"LABEL org.opencontainers.image.description=Debian {DEBIAN_SUITE} minbase, python3",
    ]
    tar = subprocess.Popen(
        ["tar", "-C", str(ROOTFS), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    argv = [engine, "import", *(a for c in changes for a in ("--change", c)), "-", name]
    print("$ tar -C " + str(ROOTFS) + " -c . | " + " ".join(argv), flush=True)
    imported = subprocess.run(argv, stdin=tar.stdout, capture_output=True, text=True)
    tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        raise SuiteError(f"importing the base failed: {imported.stderr.strip()[-300:]}")
    shutil.rmtree(ROOTFS)
    return name


def fetch_wheelhouse(python: str = sys.executable) -> None:
    """Download every locked wheel for CPython 3.11 / manylinux x86-64, hash-checked."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    platforms = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    # The tf lock is a superset of the numpy lock at the same versions.
    _run(
        [
            python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp", *platforms,
            "--require-hashes", "-r", LOCKS["tf"], "-r", LOCKS["numpy"], "-d", WHEELHOUSE,
        ]
    )  # fmt: skip


def build_suite_wheel(python: str = sys.executable) -> Path:
    """The suite as a wheel (no dependencies: the locks carry those)."""
    shutil.rmtree(SUITE_WHEELS, ignore_errors=True)
    _run([python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", SUITE_WHEELS, ROOT])
    (wheel,) = SUITE_WHEELS.glob("*.whl")
    return wheel


def git_commit() -> str:
    """HEAD's id, with ``-dirty`` when tracked files differ from it (as ``git describe``)."""
    head = _capture(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    if head.returncode != 0:
        return "unknown"
    dirty = _capture(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def build_images(
    engine: str,
    flavours: Sequence[str] = FLAVOURS,
    *,
    base: str | None = None,
    no_cache: bool = False,
    fetch: bool = True,
) -> dict:
    """Fetch the wheelhouse, build the suite's wheel, then each image with the network off."""
    timings = {}
    start = time.perf_counter()
    if fetch:
        fetch_wheelhouse()
    timings["wheelhouse_s"] = round(time.perf_counter() - start, 1)
    build_suite_wheel()
    base = base or default_base(engine)
    commit = git_commit()
    for flavour in flavours:
        image = image_name(flavour)
        start = time.perf_counter()
        _run(
            [
                engine, "build", "--network", "none", "-f", DOCKERFILE, "--target", flavour,
                "-t", image, "--build-arg", f"BASE_IMAGE={base}",
                "--build-arg", f"VERSION={project_version()}",
                "--build-arg", f"GIT_COMMIT={commit}", "--build-arg", f"IMAGE_NAME={image}",
                *(["--no-cache"] if no_cache else []), ROOT,
            ]
        )  # fmt: skip
        timings[f"{flavour}_build_s"] = round(time.perf_counter() - start, 1)
        timings[f"{flavour}_size_mb"] = image_size_mb(engine, image)
    timings.update(base=base, commit=commit)
    return timings


def lock_input(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The numpy image's requirements: the project's minus TensorFlow, at the tf lock's versions."""
    with open(pyproject, "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    keep = [d for d in deps if re.match(r"[A-Za-z0-9._-]+", d).group().lower() not in TF_PACKAGES]
    header = (
        "# Generated by `nox -s lock` from pyproject.toml: its dependencies minus TensorFlow.\n"
    )
    return header + "-c requirements-tf.txt\n" + "\n".join(keep) + "\n"


# --- command line --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.containers", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("engine", help="print the detected container engine (or none)")

    p = sub.add_parser("base", help="build the local Debian base image with debootstrap")
    p.add_argument("--force", action="store_true", help="rebuild even if it exists")
    p.add_argument("--mirror", default=None, help="Debian mirror (default: the one apt uses)")

    p = sub.add_parser("build", help="fetch the wheelhouse and build the images")
    p.add_argument("flavours", nargs="*", help="numpy, tf (default: both)")
    p.add_argument(
        "--base", default=None, help="base image (default: $BASE_IMAGE, local base, or official)"
    )
    p.add_argument("--no-cache", action="store_true", help="build every layer again")
    p.add_argument("--offline", action="store_true", help="use the wheelhouse as it is")

    p = sub.add_parser("lock-input", help="print the numpy lock's input file")

    for name, helptext in (
        ("train", "run jobs in their images (or --local)"),
        ("check", "check jobs' run folders"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("jobs", nargs="*", help="job names (default: every job)")
        p.add_argument("--profile", default="full", choices=("quick", "full"))
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", type=Path, default=Path(os.environ.get("MNIST_SUITE_RUNS", "runs")))
        if name == "train":
            p.add_argument("--local", action="store_true", help="run here, not in a container")
            p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
            p.add_argument("--check", action="store_true", help="then check the run folders")
        else:
            p.add_argument("--in-container", action="store_true", help="require container records")

    p = sub.add_parser("overhead", help="container start-to-first-step minus local, per job")
    p.add_argument("jobs", nargs="+")
    p.add_argument("--profile", default="quick", choices=("quick", "full"))
    return parser


def _report_problems(args: argparse.Namespace, in_container: bool) -> int:
    problems = check_runs(
        args.out,
        args.jobs,
        profile=args.profile,
        seed=args.seed,
        in_container=in_container,
        uid=os.getuid(),
    )
    for problem in problems:
        print(f"problem: {problem}")
    print(f"checked {args.out}: {len(problems)} problems")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "engine":
            print(detect_engine() or "none")
        elif args.command == "base":
            start = time.perf_counter()
            name = build_base(require_engine(), mirror=args.mirror, force=args.force)
            print(f"base image {name} ready after {time.perf_counter() - start:.0f} s")
        elif args.command == "build":
            for flavour in args.flavours:
                image_name(flavour)  # rejects an unknown flavour before any work
            timings = build_images(
                require_engine(),
                args.flavours or FLAVOURS,
                base=args.base,
                no_cache=args.no_cache,
                fetch=not args.offline,
            )
            print(json.dumps(timings, indent=2))
        elif args.command == "lock-input":
            print(lock_input(), end="")
        elif args.command == "train":
            if args.check and args.set:
                raise SuiteError("--check checks the profiles' runs: leave out --set")
            extra = [a for kv in args.set for a in ("--set", kv)]
            code = train(
                args.jobs,
                profile=args.profile,
                out=args.out,
                seed=args.seed,
                local=args.local,
                extra=extra,
            )
            if args.check:
                code = max(code, _report_problems(args, in_container=not args.local))
            return code
        elif args.command == "check":
            return _report_problems(args, in_container=args.in_container)
        elif args.command == "overhead":
            for job in args.jobs:
                print(json.dumps(overhead(job, profile=args.profile)), flush=True)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
