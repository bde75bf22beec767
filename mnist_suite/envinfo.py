"""Where and with what a result was produced: a pytest-benchmark-style envelope, and the one
machine identity that decides whether two timings may be compared.

A machine's identity (:func:`machine_identity`) is its CPU's vendor, family, model and
stepping, a digest of its CPU flags, its cores and memory, and its host name. The brand string
is not enough: on virtual machines it is generic ("AMD EPYC" names a Zen 3 and a Zen 5 alike,
and the same epoch takes 4.5 s on one and 2.7 s on the other), while family, model and stepping
tell them apart and the flags say which vector units the hypervisor exposes. Two identities
are the same *machine kind* when all but the host agree, the same *machine* with the host.
An identity with a field unknown is the same as nothing: never comparable.

Stdlib only (the BLAS policy is imported where a record is made), so ``bench/compare.py`` and
the noxfile read identities from any Python.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mnist_suite.defaults import (
    BASE_ID_VARIABLE,
    BASE_IMAGE_VARIABLE,
    GIT_COMMIT_VARIABLE,
    HOST_VARIABLE,
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
    """Installed versions, read from metadata (importing TensorFlow here would be a side
    effect): the suite's dependencies and every installed job plugin's distribution."""
    from mnist_suite.plugins import distributions

    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found | distributions()


def machine_info() -> dict:
    # threadpoolctl, only where a record is made: reading identities needs the stdlib alone.
    from mnist_suite import threads

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
        # What decides whether this record's clocks compare with another's.
        "identity": machine_identity(),
    }


# --- machine identity ---------------------------------------------------------------------------

KIND = ("vendor", "family", "model", "stepping", "flags", "cores", "memory_gib")
IDENTITY = (*KIND, "host")
# /proc/cpuinfo's names for the identity's CPU fields: x86, then 64-bit Arm (implementer,
# architecture, part, variant and revision say there what vendor, family, model and stepping say).
CPUINFO = {
    "vendor": ("vendor_id", "CPU implementer"),
    "family": ("cpu family", "CPU architecture"),
    "model": ("model", "CPU part"),
    "stepping": ("stepping", "CPU variant"),
    "flags": ("flags", "Features"),
}
# A field's text beyond this, or with a control character, is no machine's (a damaged or
# crafted record): it never reaches a terminal.
MAX_FIELD = 100


def _first_cpu(text: str) -> dict[str, str]:
    """The first processor's fields of a /proc/cpuinfo text, by name."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def cpu_identity(text: str) -> dict[str, str | None]:
    """The CPU fields of an identity (:data:`CPUINFO`) from a /proc/cpuinfo text, the flags as
    their digest; None for a field it does not hold."""
    cpu = _first_cpu(text)
    found = {
        name: next((cpu[k] for k in keys if cpu.get(k)), None) for name, keys in CPUINFO.items()
    }
    if found["stepping"] is not None and cpu.get("CPU revision"):
        found["stepping"] += f"r{cpu['CPU revision']}"
    if found["flags"] is not None:
        found["flags"] = flags_digest(found["flags"])
    return found


def flags_digest(flags: str) -> str:
    """The first 12 hex digits of the SHA-256 of the sorted, distinct flags (their order says
    nothing of the machine)."""
    return hashlib.sha256(" ".join(sorted(set(flags.split()))).encode()).hexdigest()[:12]


def _memory_gib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20))  # kB to GiB
    except (OSError, ValueError, IndexError):
        pass
    return None


@cache
def machine_identity() -> dict:
    """This machine's identity: ``vendor``, ``family``, ``model``, ``stepping``, ``flags`` (a
    digest), ``cores``, ``memory_gib`` and ``host`` (None where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    return cpu_identity(text) | {
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        # In a container the host name is the container's own: the launcher passes the host's.
        "host": os.environ.get(HOST_VARIABLE) or socket.gethostname(),
    }


def identity_of(value: object, fields: tuple[str, ...] = IDENTITY) -> dict[str, str] | None:
    """A recorded identity's ``fields`` as text, or None when it is not one or lacks one of them
    (an identity with a field unknown compares with nothing)."""
    if not isinstance(value, dict):
        return None
    out = {}
    for name in fields:
        field = value.get(name)
        if isinstance(field, bool) or not isinstance(field, str | int) or field == "":
            return None
        if len(str(field)) > MAX_FIELD or not str(field).isprintable():
            return None
        out[name] = str(field)
    return out


def describe(identity: dict[str, str]) -> str:
    """An identity's known fields in words: ``AuthenticAMD family 25 model 1 stepping 1, flags
    1a2b3c4d5e6f, 2 cores, 24 GiB, host vm``."""
    i = identity
    words = [
        " ".join(
            [i.get("vendor", "CPU")]
            + [f"{name} {i[name]}" for name in ("family", "model", "stepping") if name in i]
        ),
        *([f"flags {i['flags']}"] if "flags" in i else []),
        *([f"{i['cores']} cores"] if "cores" in i else []),
        *([f"{i['memory_gib']} GiB"] if "memory_gib" in i else []),
        *([f"host {i['host']}"] if "host" in i else []),
    ]
    return ", ".join(words)


def differences(a: dict, b: dict, fields: tuple[str, ...] = IDENTITY) -> list[str]:
    """The names of ``fields`` in which two identities (:func:`identity_of`) differ."""
    return [name for name in fields if a.get(name) != b.get(name)]


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
