"""Nox sessions for mnist-suite. `nox -l` lists them; heavy ones are not run by default."""

from __future__ import annotations

import nox

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
