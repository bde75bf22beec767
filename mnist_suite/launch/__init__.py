"""Launchers: each back end turns a plan (a list of :class:`~mnist_suite.plan.WorkItem`) into runs.

The interface is one method, ``launch(items, options) -> {plan index: exit code}``. Every back
end runs an item the same way, as ``mnist-suite run … --index …`` (in a warm worker here or in a
container, in a pod or in a Slurm task), and the run directory is the only thing items share.
``local`` is a pool of warm worker processes on this machine; a container launcher reuses that
pool with each worker in a container
(:meth:`~mnist_suite.launch.local.LocalLauncher.worker_command`). Kubernetes
and Slurm cannot be driven from here: ``kubernetes`` and ``slurm`` write what their engines run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnist_suite.options import option

# Thread pools a worker process sizes from its environment: OpenMP, OpenBLAS and MKL read theirs
# when they load, TensorFlow reads TF_NUM_*_THREADS when its runtime starts (config threads=0).
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
TF_THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


@dataclass(frozen=True)
class LaunchOptions:
    """How to run a plan: where runs go, how many at once, with how many threads each."""

    runs: Path
    workers: int = option(0, "parallel items (default: one per core)")
    threads: int = option(0, "BLAS/TF threads per worker (default: cores/workers)")
    force: bool = option(False, "re-run items already recorded")
    reuse_outdated: bool = option(
        False,
        "keep finished runs recorded by other code (default: run them again)",
        flag=("--reuse-outdated", "--reuse-stale"),
    )
    data: Path | None = None  # MNIST file or folder (default: the suite's source chain)
    offline: bool = False
    logs: Path | None = None  # one log file per item (default: RUNS/.logs)


# The options every item's own `run` gets from its launcher, beside the item's arguments.
WORKER_OPTIONS = ("force", "reuse_outdated", "data", "offline")


def thread_env(threads: int) -> dict[str, str]:
    """The environment that caps one worker's BLAS and TensorFlow thread pools at ``threads``."""
    value = str(max(1, threads))
    return {name: value for name in (*BLAS_THREAD_VARS, *TF_THREAD_VARS)}
