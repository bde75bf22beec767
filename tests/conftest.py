"""Shared fixtures: real MNIST (verified, cached once per machine) and an in-process CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def mnist():
    """The real, checksum-verified MNIST (fetched through the source chain on first use)."""
    from mnist_suite.data import load_mnist

    return load_mnist()


@pytest.fixture
def run_cli(tmp_path, capsys, mnist):
    """Run ``mnist-suite`` in-process; returns (exit code, stdout, stderr).

    Runs land in ``tmp_path / "runs"`` unless ``--runs`` is given; MNIST comes from the cache
    the ``mnist`` fixture filled.
    """
    from mnist_suite.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        args = list(argv)
        if args and args[0] == "run" and not {"--runs", "--out"} & set(args):
            args += ["--runs", str(tmp_path / "runs")]
        code = main(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def run_path(stdout: str) -> Path:
    """The run directory printed on the last line of ``mnist-suite run``."""
    line = stdout.strip().splitlines()[-1]
    return Path(line.split()[1])
