"""Every cap on what a user or a shared file can ask for, and the checks that apply them.

Caps are checked before any work starts (before a run folder, a plan file or a script is
written), so a request beyond them ends in one ``error:`` line with exit 2. Values that reach
shell text or a manifest either pass one of the whitelists here or are quoted where they land.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import stat
from pathlib import Path

from mnist_suite.errors import ConfigError, ParameterError, path_error
from mnist_suite.files import read_bounded

MAX_PLAN_ITEMS = 100_000  # items of one plan (job x cell x seed), built or loaded
MAX_SEEDS = 10_000  # seeds of one plan
MAX_CELLS = 10_000  # cells of one job's grid or sweep
MAX_EPOCHS = 10_000  # epochs of one run
MAX_STEPS = 10_000_000  # optimiser steps of one run
MAX_PLAN_BYTES = 64 << 20  # a saved plan file
MAX_ITEM_LINE_BYTES = 1 << 20  # one item line given to a warm worker
MAX_ARTIFACT_BYTES = 512 << 20  # the arrays of one run artifact the report loads
MAX_CLAIM_WAIT = 3600.0  # seconds a run waits for another attempt's claim
MAX_INDEX_DIGITS = 9  # an engine's item index ($JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID)
MAX_PARALLELISM = 100_000  # pods or array tasks at a time
MAX_CPUS = 1024  # CPUs per task or pod, threads per worker
MAX_WORKERS = 256  # processes of the local pool

_SLURM_MEMORY = re.compile(r"^[1-9][0-9]{0,8}[KMGT]?$")
# Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_SLURM_TIME = re.compile(
    r"^(?:[0-9]{1,5}-[0-9]{1,2}(?::[0-9]{1,2}){0,2}|[0-9]{1,7}(?::[0-9]{1,2}){0,2})$"
)
_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SLURM_LIST = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?:,[A-Za-z0-9][A-Za-z0-9._-]{0,63}){0,15}$"
)
_IMAGE_REGISTRY = re.compile(r"^[a-z0-9][a-z0-9.-]*(?::[0-9]{1,5})?(?:/[a-z0-9][a-z0-9._-]*)*/?$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9._-]{0,100}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
# Paths that appear in ``#SBATCH`` lines or bind specs, where shell quoting does not apply.
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._/+@=~-]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$"
)
_CPU = re.compile(r"^[0-9]{1,6}(?:\.[0-9]{1,3})?m?$")
_QUANTITY = re.compile(r"^(?:[0-9]{1,9}(?:\.[0-9]{1,6})?)(?:m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def _show(text: object) -> str:
    """A value as an error message shows it: repr, cut to 60 characters (one line)."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def match(pattern: re.Pattern, text: object, name: str, expected: str) -> str:
    """``text`` if it is a string that ``pattern`` matches whole; else a ConfigError."""
    if not isinstance(text, str) or not pattern.fullmatch(text):
        raise ConfigError(f"{name} {_show(text)}: expected {expected}")
    return text


def slurm_memory(text: str) -> str:
    return match(_SLURM_MEMORY, text, "memory", "a size like 4G, 500M or 16000 (MB)")


def slurm_time(text: str) -> str:
    return match(_SLURM_TIME, text, "time", "a Slurm time: MM, HH:MM:SS or D-HH:MM:SS")


def slurm_name(text: str, name: str = "name") -> str:
    return match(_SLURM_NAME, text, name, "letters, digits, '.', '_', '-' (at most 64)")


def slurm_list(text: str, name: str) -> str:
    return match(
        _SLURM_LIST, text, name, "names of letters, digits, '.', '_', '-', comma-separated"
    )


def image_registry(text: str) -> str:
    if not text:
        return text
    return match(
        _IMAGE_REGISTRY, text, "image_registry", "a registry like registry.example.com/team"
    )


def image_tag(text: str) -> str:
    return match(_IMAGE_TAG, text, "image_tag", "letters, digits, '.', '_', '-' (at most 100)")


def file_name(text: str, name: str) -> str:
    return match(_FILE_NAME, text, name, "a file name of letters, digits, '.', '_', '-'")


def plain_path(path: Path, name: str) -> Path:
    """An absolute path that needs no quoting (it goes where quotes do not apply)."""
    text = str(path)
    if not _PLAIN_PATH.fullmatch(text):
        raise ConfigError(
            f"{name} {_show(text)}: use a path of letters, digits and ./_-+@=~ only "
            "(it is written into the script where quoting does not apply)"
        )
    return path


def dns_label(text: str, name: str) -> str:
    """An RFC 1123 label: lower-case letters, digits and '-', at most 63 characters."""
    return match(_DNS_LABEL, text, name, "an RFC 1123 name: a-z, 0-9, '-', at most 63 characters")


def dns_subdomain(text: str, name: str) -> str:
    if isinstance(text, str) and len(text) > 253:
        raise ConfigError(f"{name} {_show(text)}: at most 253 characters")
    return match(_DNS_SUBDOMAIN, text, name, "an RFC 1123 name: a-z, 0-9, '-', '.'")


def quantity(text: str, name: str, cpu: bool = False) -> str:
    """A positive Kubernetes quantity (``4Gi``, ``500M``; for ``cpu``: ``1``, ``1.5``, ``500m``)."""
    if cpu:
        match(_CPU, text, name, "CPUs like 1, 1.5 or 500m")
    else:
        match(_QUANTITY, text, name, "a positive quantity like 4Gi or 500M")
    if float(re.sub(r"[a-zA-Z]+$", "", text)) <= 0:
        raise ConfigError(f"{name} {_show(text)}: expected a positive quantity")
    return text


def int_range(value: object, name: str, low: int, high: int) -> int:
    """``value`` if it is an int (not a bool) in ``[low, high]``; else a ConfigError."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} {_show(value)}: expected an integer from {low} to {high}")
    return value


def seconds(text: str, name: str, high: float) -> float:
    """A finite number of seconds in ``[0, high]`` parsed from ``text``."""
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= high):
        raise ConfigError(f"{name}={_show(text)}: expected seconds from 0 to {high:g}")
    return value


def index_text(text: str, name: str) -> int:
    """An engine's item index: ASCII digits only, at most :data:`MAX_INDEX_DIGITS`."""
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_INDEX_DIGITS):
        raise ConfigError(
            f"${name}={_show(text)}: expected a non-negative integer index "
            f"(at most {MAX_INDEX_DIGITS} digits)"
        )
    return int(text)


def regular_file(path: Path, name: str) -> Path:
    """``path`` if it names a regular file (symlinks followed); FIFOs, devices, sockets and
    folders are refused before anything opens them (a FIFO would block, ``/dev/zero`` never ends).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(f"{name} {path}: no such file") from None
    except OSError as exc:
        why = f"{name} {path}: cannot read ({exc.strerror or exc})"
        raise path_error(exc, why, ConfigError) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise ConfigError(f"{name} {path}: is {kind}; expected a file")
    return Path(path)


def read_bytes(path: Path, max_bytes: int, name: str) -> bytes:
    """At most ``max_bytes`` of the regular file ``path``; more, or no such file, is a
    ConfigError. The cap counts bytes read (a file that grows, or lies in ``stat``, cannot
    exceed it), and regularity is checked on the descriptor that is read."""
    try:
        data = read_bounded(path, max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{name} {path}: no such file") from None
    except OSError as exc:
        why = f"{name} {path}: cannot read ({exc.strerror or exc})"
        raise path_error(exc, why, ConfigError) from None
    if len(data) > max_bytes:
        raise ConfigError(f"{name} {path}: more than {max_bytes} bytes")
    return data


# --- configs: checked on every resolved config and every cell, before a run folder exists -----

MAX_WIDTH = 8192  # units of any layer (a weights file is held to the same)
MAX_LINEAR = 16  # Linear layers of a model
MAX_PARAMS = 8_000_000  # parameters of a model: 64 MB of float64
MNIST_PIXELS, MNIST_CLASSES, MNIST_TRAIN = 784, 10, 60_000
_EPOCH_FIELDS = re.compile(r"(?:^|_)epochs$")
_STEP_FIELDS = re.compile(r"(?:^|_)(?:iterations|steps)$")
_WIDTH_FIELDS = ("widths", "hidden")


def combinations(config: object, changes: dict) -> int:
    """Cells a grid over ``config`` with ``changes`` can have: the product of its list lengths."""
    import dataclasses

    total = 1
    for f in dataclasses.fields(config):
        value = changes.get(f.name, getattr(config, f.name))
        if isinstance(value, tuple) and f.name not in _WIDTH_FIELDS:
            total *= max(1, len(value))
    return total


def _widths(config: object) -> list[tuple[int, ...]]:
    """The hidden widths of every model ``config`` describes (``nets`` spell them ``32-32``)."""
    found = []
    for name in _WIDTH_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            found.append((value,))
        elif isinstance(value, tuple) and all(isinstance(w, int) for w in value):
            found.append(value)
    for net in getattr(config, "nets", ()) or ():
        parts = str(net).split("-")
        if all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
            found.append(tuple(int(p) for p in parts))
    return found


def parameters(widths: tuple[int, ...]) -> int:
    """Parameters of the MLP 784 -> widths -> 10 (weights and biases)."""
    dims = (MNIST_PIXELS, *widths, MNIST_CLASSES)
    return sum(a * b + b for a, b in itertools.pairwise(dims))


def memory_estimate(config: object) -> int:
    """Bytes a run of ``config`` needs at least: MNIST as floats, the model four times over
    (weights, gradients, two optimiser slots), and a batch's activations and their gradients."""
    batch = int(getattr(config, "batch_size", 256) or 256)
    data = MNIST_TRAIN * MNIST_PIXELS * 4 * 2
    model = max((parameters(w) for w in _widths(config)), default=0) * 8 * 4
    widest = max((sum(w) for w in _widths(config)), default=0)
    activations = batch * (MNIST_PIXELS + widest + MNIST_CLASSES) * 8 * 3
    return data + model + activations


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_config(config: object) -> None:
    """Refuse a config beyond the caps: epochs, steps, layer widths, parameters, memory."""
    import dataclasses

    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        if _EPOCH_FIELDS.search(f.name) and value > MAX_EPOCHS:
            raise ParameterError(f"{f.name}={value}: at most {MAX_EPOCHS}")
        if _STEP_FIELDS.search(f.name) and value > MAX_STEPS:
            raise ParameterError(f"{f.name}={value}: at most {MAX_STEPS}")
    for widths in _widths(config):
        shown = ",".join(map(str, widths))
        if len(widths) + 1 > MAX_LINEAR:
            raise ParameterError(f"widths {shown}: at most {MAX_LINEAR - 1} hidden layers")
        if any(w > MAX_WIDTH for w in widths):
            raise ParameterError(f"widths {shown}: at most {MAX_WIDTH} units per layer")
        if parameters(widths) > MAX_PARAMS:
            raise ParameterError(
                f"widths {shown}: {parameters(widths)} parameters, more than {MAX_PARAMS}"
            )
    need, have = memory_estimate(config), machine_memory()
    if have and need > have:
        raise ParameterError(
            f"this configuration needs about {need >> 20} MB, more than this machine's "
            f"{have >> 20} MB (smaller batch_size or widths)"
        )
