"""Shared fixtures: real MNIST (verified, cached once per machine) and an in-process CLI."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="session")
def shipped(tmp_path_factory):
    """``shipped(path)``: the file or folder ``path`` of this checkout as committed at HEAD,
    copied out of git. The working tree's copy is what the user's own ``nox -s suite`` or
    ``bench`` last wrote (reports/, bench/results/), not what ships. Outside a git checkout
    (an unpacked source archive) the working tree's copy is the shipped one."""
    top = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    )
    if top.returncode or Path(top.stdout.strip()).resolve() != ROOT:
        return lambda path: ROOT / path
    into = tmp_path_factory.mktemp("shipped")

    def committed(path: str) -> Path:
        if not (into / path).exists():
            # A path not committed at HEAD fails here: a shipped file must be in git.
            tar = subprocess.run(
                ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD", "--", path],
                capture_output=True, check=True,
            )  # fmt: skip
            with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
                archive.extractall(into, filter="data")
        return into / path

    return committed


def run_path(stdout: str) -> Path:
    """The run directory printed on the last line of ``mnist-suite run``."""
    line = stdout.strip().splitlines()[-1]
    return Path(line.split()[1])


def hparams_tables(root):
    """What TensorBoard's HParams dashboard serves for logdir ``root``: experiment, groups."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import (
        api_pb2,
        backend_context,
        get_experiment,
        list_session_groups,
    )

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(root))
    backend = backend_context.Context(
        base_plugin.TBContext(logdir=str(root), multiplexer=mux, data_provider=provider)
    )
    request = context.RequestContext()
    experiment = get_experiment.Handler(
        request, backend, "", api_pb2.GetExperimentRequest(include_metrics=True)
    ).run()
    groups = list_session_groups.Handler(
        request,
        backend,
        "",
        api_pb2.ListSessionGroupsRequest(
            start_index=0,
            slice_size=100,
            include_metrics=True,
            allowed_statuses=list(api_pb2.Status.values()),
        ),
    ).run()
    return experiment, groups
