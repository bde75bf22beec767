"""One schema per record file of a run directory, checked on every read.

Run directories are read by ``runs``, the report and every re-run, and may hold anything: a
file torn by a kill, a foreign tool's JSON, a hand edit. Each reader here returns the record
only when it fits its schema and otherwise raises :class:`RecordError` naming the file and what
does not fit, so the run is shown as ``corrupt`` (and re-run) instead of crashing a reader or
passing for ``done``.

Schemas (JSON types; "number" is a finite int or float that a float holds, never a bool):

- ``config.json``: object whose fields, when present, are ``job`` (non-empty str), ``cell``
  (str), ``profile`` (one of :data:`~mnist_suite.defaults.PROFILES`), ``seed`` (int from 0 to
  2³¹−1), ``run_id`` (str), ``config`` (object), ``fingerprint`` (str: the code fingerprint,
  :mod:`mnist_suite.fingerprint`) and the envelope's ``machine_info``, ``commit_info``,
  ``versions`` (objects), ``datetime`` (str); ``machine_info``'s ``load_average``, when present,
  is a list of at most three numbers in [0, 10⁶] and its ``cores`` an int in [1, 10⁶].
- ``status.json``: object with ``state`` (one of :data:`STATES`) and, when present,
  ``started_at`` (str), ``ended_at`` (str or null), ``pid`` (int > 0), ``host`` (str),
  ``heartbeat_unix`` (number), ``message`` (str), ``diverged_at_step`` (int).
- ``metrics.json``: object of metric values (number, null, bool, str, or lists and objects of
  them); names that denote a quantity (``*accuracy*``, ``*loss*``, ``*mse*``, ``*seconds*``,
  ...) hold numbers or nulls, never a bool or text; accuracies lie in [0, 1] and durations
  (``*seconds``) in [0, 1e9] (the ranges :mod:`mnist_suite.meanings` checks on read); every
  number lies within ±10¹² (:data:`MAX_FIGURE`);
  ``wall_seconds`` (number >= 0) is always present, and ``diverged_at_step`` (int) for a
  diverged run.
- ``history.jsonl``: one object per line with ``kind`` (str), ``step`` (int from 0 to 10¹²),
  ``time`` (number) and values as in ``metrics.json``. A torn last line (no newline: the
  writer was killed mid-line) is skipped; any other line that is not a fitting row is corrupt.

Record files are read without following symbolic links (the suite never writes one): a link put
in a run folder makes it corrupt, never a way to read a file from elsewhere into a report. A record
this user may not read raises :class:`UnreadableRecord`: such a run is ``unreadable``, not
corrupt, and is never cleared.

Writers and readers share the caps: ``mnist_suite.runs`` writes no record beyond
:data:`MAX_RECORD_BYTES` and stops appending history rows at :data:`MAX_HISTORY_BYTES`; a
reader reads no more than that. A history longer than the cap (written by other means) is read
up to the cap, never called corrupt: a large record is no reason to run a finished run again.
"""

from __future__ import annotations

import errno
import json
import math
import re
from pathlib import Path
from typing import Any

from mnist_suite.defaults import PROFILES
from mnist_suite.files import atomic_write_bytes, dumps, read_bounded
from mnist_suite.meanings import LARGEST, meaning
from mnist_suite.plan import MAX_SEED

STATES = ("running", "done", "failed", "diverged", "interrupted")
MAX_RECORD_BYTES = 16 << 20  # config/status/metrics: real ones are a few KB
MAX_HISTORY_BYTES = 64 << 20  # history.jsonl: the longest real run logs ~2 MB
HISTORY_FULL = "history_full"  # the kind of the row a writer leaves when it stops at the cap
MAX_TEXT = 4096  # characters of any string field
# Any figure: none of a run is larger, and statistics over larger ones overflow (their squares).
MAX_FIGURE = LARGEST
MAX_STEP = 10**12
MAX_MACHINE = 10**6  # cores, and load averages (runnable processes), of one machine
_QUANTITY = re.compile(r"accuracy|loss|mse|seconds|fvu|variance|params|parameters|steps?$|epochs?$")


class RecordError(ValueError):
    """A record file that does not fit its schema; ``str()`` is ``"<file>: <why>"``."""

    def __init__(self, name: str, why: str):
        super().__init__(f"{name}: {why}")
        self.name = name
        self.why = why


class UnreadableRecord(RecordError):
    """A record this user may not read (another user's file, a folder without access).

    Not a damaged record: the run may well be finished, so no reader may clear or re-run it.
    """


def unreadable(name: str, exc: OSError) -> RecordError:
    """The RecordError for an OSError met reading ``name``: permissions are their own kind."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UnreadableRecord(name, f"unreadable to this user ({exc.strerror})")
    if exc.errno == errno.ELOOP:
        return RecordError(name, "a symbolic link (a run's records are files of its own)")
    return RecordError(name, f"unreadable ({exc.strerror})")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def is_number(value: Any) -> bool:
    """A finite JSON number a float holds (bools are not numbers, NaN/inf are not finite, nor
    is an integer of 309 digits)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN and nulls are not numbers)."""
    return float(value) if is_number(value) else None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT


# field -> (check, description)
_CHECKS = {
    "str": (_text, f"a string (<= {MAX_TEXT} characters)"),
    "name": (lambda v: _text(v) and bool(v), "a non-empty string"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "seed": (lambda v: is_int(v) and 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED}"),
    "profile": (lambda v: v in PROFILES, f"one of {', '.join(PROFILES)}"),
    "pid": (lambda v: is_int(v) and v > 0, "an integer > 0"),
    "int": (is_int, "an integer"),
    "number": (is_number, "a finite number"),
    "state": (lambda v: v in STATES, f"one of {', '.join(STATES)}"),
    "str|null": (lambda v: v is None or _text(v), "a string or null"),
}

# name -> (check, required). Hand-made and older records may leave fields out; a field that is
# present must have its type. What a reader cannot do without is required.
CONFIG_FIELDS = {
    "job": ("name", False),
    "cell": ("str", False),
    "profile": ("profile", False),
    "seed": ("seed", False),
    "run_id": ("str", False),
    "config": ("object", False),
    "fingerprint": ("str", False),
    "machine_info": ("object", False),
    "commit_info": ("object", False),
    "versions": ("object", False),
    "datetime": ("str", False),
}
STATUS_FIELDS = {
    "state": ("state", True),
    "started_at": ("str", False),
    "ended_at": ("str|null", False),
    "pid": ("pid", False),
    "host": ("str", False),
    "heartbeat_unix": ("number", False),
    "message": ("str", False),
    "diverged_at_step": ("int", False),
}


def _check_object(value: Any, name: str, fields: dict[str, tuple[str, bool]]) -> dict:
    if not isinstance(value, dict):
        raise RecordError(name, f"holds a JSON {_kind(value)}, expected an object")
    for key, (check, required) in fields.items():
        if key not in value:
            if required:
                raise RecordError(name, f"no {key!r}")
            continue
        ok, expected = _CHECKS[check]
        if not ok(value[key]):
            raise RecordError(name, f"{key} is {_short(value[key])}, expected {expected}")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return f"{_kind(value)} {text[:40]}{'…' if len(text) > 40 else ''}"


def check_config(value: Any) -> dict:
    """``config.json``'s content, if it fits its schema; else :class:`RecordError`."""
    config = _check_object(value, "config.json", CONFIG_FIELDS)
    _check_machine(config.get("machine_info", {}))
    return config


def _check_machine(machine: dict) -> None:
    """The figures of ``machine_info`` that readers print and average: load and cores."""
    load = machine.get("load_average", [])
    ok = isinstance(load, list) and len(load) <= 3
    if not (ok and all(is_number(x) and 0 <= x <= MAX_MACHINE for x in load)):
        expected = f"up to three numbers in [0, {MAX_MACHINE}]"
        raise RecordError(
            "config.json", f"machine_info.load_average is {_short(load)}, expected {expected}"
        )
    cores = machine.get("cores")
    if cores is not None and not (is_int(cores) and 1 <= cores <= MAX_MACHINE):
        expected = f"an integer from 1 to {MAX_MACHINE}"
        raise RecordError(
            "config.json", f"machine_info.cores is {_short(cores)}, expected {expected}"
        )


def check_status(value: Any) -> dict:
    """``status.json``'s content, if it fits its schema; else :class:`RecordError`."""
    return _check_object(value, "status.json", STATUS_FIELDS)


def _in_range(key: str, value: float) -> bool:
    """Quantities whose range a record keeps (:func:`mnist_suite.meanings.meaning`, those
    checked ``on_read``: a fraction in [0, 1], a duration in [0, 1e9]) stay in it; any figure
    within ±:data:`MAX_FIGURE`."""
    found = meaning(key)
    return -MAX_FIGURE <= value <= MAX_FIGURE and (not found.on_read or found.in_range(value))


def _metric_ok(key: str, value: Any, depth: int = 0) -> bool:
    if value is None:
        return True
    if is_number(value):
        return _in_range(key, value)
    if depth >= 8:
        return False
    if isinstance(value, list):
        return all(_metric_ok(key, v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_metric_ok(k, v, depth + 1) for k, v in value.items())
    return (isinstance(value, bool) or _text(value)) and not _QUANTITY.search(key)


def check_metrics(value: Any, state: str = "done") -> dict:
    """``metrics.json``'s content for a run in ``state``, if it fits; else :class:`RecordError`."""
    if not isinstance(value, dict):
        raise RecordError("metrics.json", f"holds a JSON {_kind(value)}, expected an object")
    for key, item in value.items():
        if not _metric_ok(key, item):
            raise RecordError(
                "metrics.json", f"{key} is {_short(item)}, expected a number in its range"
            )
    wall = value.get("wall_seconds")
    if not (is_number(wall) and wall >= 0):
        raise RecordError("metrics.json", "no wall_seconds >= 0 (every finished run has one)")
    if state == "diverged" and not is_int(value.get("diverged_at_step")):
        raise RecordError("metrics.json", "a diverged run without an integer diverged_at_step")
    return value


def check_history_row(row: Any, line: int) -> dict:
    """One ``history.jsonl`` row, if it fits; else :class:`RecordError` naming the line."""
    name = f"history.jsonl line {line}"
    if not isinstance(row, dict):
        raise RecordError(name, f"holds a JSON {_kind(row)}, expected an object")
    if not (_text(row.get("kind")) and is_int(row.get("step")) and 0 <= row["step"] <= MAX_STEP):
        raise RecordError(name, f"needs kind (string) and step (integer from 0 to {MAX_STEP})")
    if not is_number(row.get("time")):
        raise RecordError(name, "needs time (a finite number)")
    for key, value in row.items():
        if key not in ("kind", "step", "time") and not _metric_ok(key, value):
            raise RecordError(name, f"{key} is {_short(value)}, expected a number in its range")
    return row


def encode(value: Any, name: str) -> bytes:
    """``value`` as the strict JSON a record file holds; ValueError beyond the readers' cap."""
    data = (dumps(value) + "\n").encode()
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"{name}: {len(data)} bytes, more than the {MAX_RECORD_BYTES} allowed")
    return data


def write(path: Path, value: Any) -> None:
    """Write the record file ``path`` atomically, within the size its readers accept
    (ValueError if not)."""
    data = encode(value, path.name)
    atomic_write_bytes(path, data)


def _load(path: Path, name: str, max_bytes: int) -> Any:
    """The JSON value in ``path``; FileNotFoundError if absent, RecordError if unreadable."""
    try:
        size = path.lstat().st_size
        if size > max_bytes:
            raise RecordError(name, f"{size} bytes, more than the {max_bytes} a record may have")
        data = read_bounded(path, max_bytes + 1, follow=False)
        if len(data) > max_bytes:
            raise RecordError(name, f"more than the {max_bytes} bytes a record may have")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise unreadable(name, exc) from None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RecordError(name, f"not JSON ({str(exc).splitlines()[0][:60]})") from None


def read_config(run_dir: Path) -> dict:
    """The run's ``config.json``; RecordError if missing or not fitting."""
    try:
        return check_config(_load(run_dir / "config.json", "config.json", MAX_RECORD_BYTES))
    except FileNotFoundError:
        raise RecordError("config.json", "missing") from None


def read_status(run_dir: Path) -> dict | None:
    """The run's ``status.json``; None if absent, RecordError if not fitting."""
    try:
        return check_status(_load(run_dir / "status.json", "status.json", MAX_RECORD_BYTES))
    except FileNotFoundError:
        return None


def read_metrics(run_dir: Path, state: str) -> dict | None:
    """The run's ``metrics.json``; None if absent, RecordError if not fitting."""
    try:
        value = _load(run_dir / "metrics.json", "metrics.json", MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None
    return check_metrics(value, state)


def read_history(path: Path, strict: bool = True) -> list[dict]:
    """Rows of a ``history.jsonl``; a torn last line is skipped.

    With ``strict`` any other line that is not a fitting row raises :class:`RecordError`;
    without it such lines are skipped (for readers that only want what is usable).
    """
    path = Path(path)
    try:
        data = read_bounded(path, MAX_HISTORY_BYTES, follow=False)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if strict:
            raise unreadable("history.jsonl", exc) from None
        return []
    # The part after the last newline is b"" for a complete file, or a line torn by a kill
    # mid-write: the rows before it are whole, so it is skipped.
    lines = data.split(b"\n")[:-1]
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            if strict:
                raise RecordError(f"history.jsonl line {number}", "not JSON") from None
            continue
        try:
            rows.append(check_history_row(row, number))
        except RecordError:
            if strict:
                raise
    return rows
