"""Nox sessions for mnist-suite. `nox -l` lists them; heavy ones are not run by default."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))
from training.containers import use_repo_podman_conf

# Podman on machines like CI's needs the repo's containers.conf; a user's own setting wins.
use_repo_podman_conf()

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# Quiet TensorFlow's C++ start-up notices in every session (oneDNN stays on).
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def install_suite(session: nox.Session, extras: str = "dev") -> None:
    """Install the suite (editable) with the given extras into the session's venv."""
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (slow tests included; pass pytest options after --)."""
    install_suite(session)
    code = session.run("pytest", *session.posargs, env=ENV, success_codes=[0, 5])
    if code == 5:
        session.warn("pytest collected no tests (exit 5) with these options")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def data(session: nox.Session) -> None:
    """Fetch and verify MNIST into the cache; prints the source used (options after --)."""
    install_suite(session, extras="")
    session.run("mnist-suite", "data", *session.posargs, env=ENV)


@nox.session
def bench(session: nox.Session) -> None:
    """Run bench/ (pytest-benchmark) into bench/results/latest.json (pytest options after --)."""
    install_suite(session)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    session.run(
        "pytest", "bench/", "--benchmark-only", "--benchmark-json=bench/results/latest.json",
        *session.posargs, env=ENV,
    )  # fmt: skip


@nox.session
def report(session: nox.Session) -> None:
    """Write reports/ from runs/ and bench/results/ (override with e.g. -- --runs DIR)."""
    install_suite(session, extras="")
    session.run(
        "mnist-suite",
        "report",
        "--runs",
        "runs",
        "--bench",
        "bench/results",
        "--out",
        "reports",
        *session.posargs,
        env=ENV,
    )


# --- Containers: `python -m training.containers` does the work (docker/Dockerfile explains).
# On machines like CI's, Podman needs `export CONTAINERS_CONF=$PWD/docker/containers.conf`.
CONTAINERS = (sys.executable, "-m", "training.containers")
LOCK = ("pip-compile", "--quiet", "--allow-unsafe", "--generate-hashes", "--no-emit-find-links")
LOCK += ("--no-emit-index-url", "--strip-extras")


@nox.session(venv_backend="none")
def base_image(session: nox.Session) -> None:
    """Build the local Debian base image with debootstrap, for where none can be pulled."""
    session.run(*CONTAINERS, "base", *session.posargs, external=True)


@nox.session
def lock(session: nox.Session) -> None:
    """Refresh the images' hash-pinned lock files in docker/ (pass --upgrade after --)."""
    session.install("pip-tools")
    tf_lock = "--output-file=docker/requirements-tf.txt"
    session.run(*LOCK, tf_lock, *session.posargs, "pyproject.toml")
    numpy_input = session.run("python", "-m", "training.containers", "lock-input", silent=True)
    with open("docker/requirements-numpy.in", "w") as f:
        f.write(numpy_input)
    session.run(
        *LOCK, "--output-file=docker/requirements-numpy.txt", *session.posargs,
        "docker/requirements-numpy.in",
    )  # fmt: skip


@nox.session(venv_backend="none")
def image(session: nox.Session) -> None:
    """Build the numpy and tf images, network off (-- numpy|tf, --no-cache, --offline)."""
    session.run(*CONTAINERS, "build", *session.posargs, external=True)


@nox.session
def train(session: nox.Session) -> None:
    """Run every job (or those after --) in its container; --local, --profile quick, --out DIR."""
    install_suite(session, extras="")
    session.run("python", "-m", "training.containers", "train", *session.posargs, env=ENV)


@nox.session
def tensorboard(session: nox.Session) -> None:
    """Serve the runs folder's TensorBoard logs on http://127.0.0.1:6006 (-- --logdir DIR)."""
    session.install("tensorboard")
    session.run(
        "tensorboard", "--logdir", "runs", "--host", "127.0.0.1", "--port", "6006",
        *session.posargs,
    )  # fmt: skip


@nox.session(venv_backend="none")
def suite(session: nox.Session) -> None:
    """Everything: data, image, train every job, bench, report (-- --profile quick)."""
    found = session.run(*CONTAINERS, "engine", silent=True, external=True)
    session.notify("data", posargs=[])
    if found.split()[-1] != "none":
        # Where debootstrap is installed (these machines: no registry), the local base is built
        # once; elsewhere the Dockerfile's default base is pulled. BASE_IMAGE overrides both.
        if shutil.which("debootstrap") and not os.environ.get("BASE_IMAGE"):
            session.notify("base_image", posargs=[])
        session.notify("image", posargs=[])
        session.notify("train", posargs=session.posargs)
    else:
        session.warn("no container engine: the jobs run locally")
        session.notify("train", posargs=["--local", *session.posargs])
    for later in ("bench", "report"):
        if later in nox.registry.get():
            session.notify(later, posargs=[])
