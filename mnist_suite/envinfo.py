"""Where and with what a result was produced: a pytest-benchmark-style envelope."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mnist_suite import threads
from mnist_suite.defaults import (
    BASE_ID_VARIABLE,
    BASE_IMAGE_VARIABLE,
    GIT_COMMIT_VARIABLE,
    IMAGE_ID_VARIABLE,
    IMAGE_VARIABLE,
)

PACKAGES = (
    "mnist-suite",
    "numpy",
    "scikit-learn",
    "matplotlib",
    "tensorboard",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def package_versions() -> dict[str, str]:
    """Installed versions, read from metadata (importing TensorFlow here would be a side effect)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def machine_info() -> dict:
    return {
        "node": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "python_version": platform.python_version(),
        "in_container": Path("/run/.containerenv").exists() or Path("/.dockerenv").exists(),
        "image": os.environ.get(IMAGE_VARIABLE, ""),
        # The content digest of the image, passed in at `run` time (an image cannot know its own).
        "image_id": os.environ.get(IMAGE_ID_VARIABLE, ""),
        # The base it was built on and the base's content id, baked in at build time.
        "base_image": os.environ.get(BASE_IMAGE_VARIABLE, ""),
        "base_id": os.environ.get(BASE_ID_VARIABLE, ""),
        "threads": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        # The BLAS thread rule, the load it sees and what it chose so far (mnist_suite/threads.py).
        "blas_policy": threads.describe(),
        # 1-, 5- and 15-minute load averages when the record was made: a figure's context.
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
    }


# Tracked outputs the suite itself writes (the reference report, the benchmark results): a
# report made right after the suite's benchmarks is not "dirty" for them.
SUITE_OUTPUTS = ("reports", "bench/results")


@cache
def commit_info() -> dict:
    """The git commit of the source tree, or the one baked into the image."""
    baked = os.environ.get(GIT_COMMIT_VARIABLE)
    if baked:
        return {"id": baked, "dirty": False, "source": "image"}
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                *(f":(exclude){path}" for path in SUITE_OUTPUTS),
            ],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"id": "", "dirty": False, "source": "unknown"}
    if head.returncode != 0:
        return {"id": "", "dirty": False, "source": "unknown"}
    return {"id": head.stdout.strip(), "dirty": bool(dirty.stdout.strip()), "source": "git"}


def envelope() -> dict:
    """The fields every result file carries, named as in pytest-benchmark's JSON."""
    return {
        "machine_info": machine_info(),
        "commit_info": commit_info(),
        "versions": package_versions(),
        "datetime": now_iso(),
    }
