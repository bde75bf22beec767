"""The defaults every command shares, written down once: runs folder, profiles, bench folder,
and every ``MNIST_SUITE_*`` environment variable the suite reads or sets."""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("quick", "full")
RUNS_VARIABLE = "MNIST_SUITE_RUNS"
DATA_VARIABLE = "MNIST_SUITE_DATA"
CACHE_VARIABLE = "MNIST_SUITE_CACHE"
OFFLINE_VARIABLE = "MNIST_SUITE_OFFLINE"
INDEX_VARIABLE = "MNIST_SUITE_INDEX"
CLAIM_WAIT_VARIABLE = "MNIST_SUITE_CLAIM_WAIT"
# Set by the images and the container launcher; recorded in every run's machine_info.
IMAGE_VARIABLE = "MNIST_SUITE_IMAGE"
IMAGE_ID_VARIABLE = "MNIST_SUITE_IMAGE_ID"
BASE_IMAGE_VARIABLE = "MNIST_SUITE_BASE_IMAGE"
BASE_ID_VARIABLE = "MNIST_SUITE_BASE_ID"
GIT_COMMIT_VARIABLE = "MNIST_SUITE_GIT_COMMIT"
# The host's name, set by the container launcher: a container's own host name is its id.
HOST_VARIABLE = "MNIST_SUITE_HOST"

# The variables a user sets, as `mnist-suite --help` lists them.
USER_VARIABLES = {
    RUNS_VARIABLE: "runs folder when --runs is not given (default ./runs)",
    DATA_VARIABLE: "an mnist.npz or IDX folder to use instead of the cache",
    CACHE_VARIABLE: "where verified MNIST is cached (default: the user cache folder)",
    OFFLINE_VARIABLE: "1: never touch the network",
    INDEX_VARIABLE: "the plan item `run` executes (also JOB_COMPLETION_INDEX, "
    "SLURM_ARRAY_TASK_ID; --index wins)",
    CLAIM_WAIT_VARIABLE: "seconds a second attempt waits for a run another process holds "
    "(0 to 3600)",
}
BENCH_RESULTS = Path("bench/results")
REPORT_FOLDER = Path("reports")


def runs_folder() -> Path:
    """The runs folder when no ``--runs`` is given: ``$MNIST_SUITE_RUNS``, else ``./runs``."""
    return Path(os.environ.get(RUNS_VARIABLE) or "runs")


def default_workers(cores: int | None = None) -> int:
    """Workers of the local pool when ``--workers`` is not given: one per usable core."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cores = os.cpu_count() or 1
    return max(1, cores)


def variables_help() -> str:
    """:data:`USER_VARIABLES` as `mnist-suite --help` lists them, one wrapped entry each."""
    from textwrap import fill

    return "".join(
        fill(f"{k:<23} {v}", 92, initial_indent="  ", subsequent_indent=" " * 26) + "\n"
        for k, v in USER_VARIABLES.items()
    )
