"""Atomic writes, tolerant reads and checked outputs: the one place that touches files on disk.

Every writer goes through a temp file in the destination folder, ``fsync`` and ``os.replace``,
so a reader sees the old file or the new one, never half of one. A written file gets the mode
a plain ``open`` would give it (0666 less the umask), so a folder shared through a group (umask
002) shares its records too. Readers never raise on a missing, torn or foreign file: they return
``None`` (or skip the line) and let the caller decide. Every read goes through
:func:`read_bounded`: a regular file only, at most a given number of bytes, so a FIFO, a device
or a huge file planted where a record belongs neither hangs a reader nor fills its memory.

Every command checks its outputs (:func:`writable_folder`, :func:`writable_file`,
:func:`not_overlapping`) before it creates or deletes anything: a folder it can write, never an
input, never among a run's records (:func:`outside_runs`), so a bad output path ends in one
``error:`` line instead of a traceback halfway through, or a finished run overwritten. Their
messages name the value as the caller passes its ``name``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mnist_suite.errors import ConfigError, MachineError, path_error

if TYPE_CHECKING:  # NumPy is imported where it is used: the image tool loads no NumPy
    import numpy as np


def resolved(path: Path, name: str) -> Path:
    """``path`` made absolute with its symlinks resolved; a symlink loop is a ConfigError."""
    try:
        return Path(path).resolve()
    except RuntimeError:  # pathlib's "Symlink loop" before 3.13
        raise ConfigError(f"{name} {path}: a symbolic link loop") from None
    except OSError as exc:
        why = "a symbolic link loop" if exc.errno == errno.ELOOP else "cannot resolve it"
        raise path_error(
            exc, f"{name} {path}: {why} ({exc.strerror or exc})", ConfigError
        ) from None


def _replaceable(path: Path) -> None:
    """OSError unless ``path`` is absent or a regular file: a rename over a device, a FIFO or
    a symbolic link would replace that, not write into a file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OSError(errno.EEXIST, "exists and is not a regular file", str(path))


def umask() -> int:
    """This process's umask, read without changing it (``os.umask`` can only set it)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: set and restore at once
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file here: 0666 less the umask."""
    return 0o666 & ~umask()


@contextlib.contextmanager
def atomic_file(path: Path, temp_prefix: str | None = None) -> Iterator[IO[bytes]]:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``.

    The file gets :func:`file_mode` (``mkstemp`` makes it 0600, unreadable to the folder's
    other users, who would take a finished run for a damaged one). The temp name starts with
    ``temp_prefix`` (default ``.<name>.``): one for readers that pick files by their name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replaceable(path)
    prefix = f".{path.name}." if temp_prefix is None else temp_prefix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _replaceable(path)  # again: something may have been put there meanwhile
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path) as f:
        f.write(data)


def _numpy():
    """NumPy when something has imported it, else None: with no NumPy loaded, no value can be
    one of its types, and a reader that never needs it (the image tool) never loads it."""
    return sys.modules.get("numpy")


def _json_default(obj: Any) -> Any:
    np = _numpy()
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if np is not None and isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None (strict JSON, readable by any tool)."""
    np = _numpy()
    if isinstance(obj, float) or (np is not None and isinstance(obj, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON of ``obj`` (NumPy scalars and arrays allowed; NaN/inf become null)."""
    return json.dumps(finite(obj), indent=indent, default=_json_default, allow_nan=False)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically."""
    atomic_write_bytes(path, (dumps(obj) + "\n").encode())


def atomic_save_npz(path: Path, compress: bool = True, **arrays: np.ndarray) -> None:
    """``np.savez[_compressed]`` through a temp file; object arrays are refused (no pickles)."""
    import numpy as np

    for name, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise TypeError(f"{Path(path).name}: {name} is an object array; save plain arrays")
    with atomic_file(path) as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)


def npy_header(zf: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """The (shape, dtype) an ``.npz`` member declares, read without loading its data.

    Raises ValueError for an ``.npy`` version other than 1.0 or 2.0 (and whatever NumPy raises
    for a malformed header): callers turn it into their own one-line error.
    """
    import numpy as np

    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{member} has .npy version {version}")
    return shape, dtype


def read_bounded(path: Path, max_bytes: int, follow: bool = True) -> bytes:
    """At most ``max_bytes`` of the regular file ``path`` (counted as read, not as stat says).

    Opened without blocking and checked on its descriptor: a FIFO or a device in place of a
    file is an OSError, never a hang or an endless read. With ``follow=False`` a symbolic link
    at ``path`` is an OSError too (ELOOP): for files the suite writes itself, which are never
    links, so a link planted there cannot point a reader at a file elsewhere.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks, total = [], 0
        while total < max_bytes and (chunk := os.read(fd, min(1 << 20, max_bytes - total))):
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path: Path, max_bytes: int = 64 << 20, follow: bool = True) -> Any | None:
    """The JSON value at ``path``; None if missing, unreadable, too large or not JSON (or, with
    ``follow=False``, a symbolic link).

    The caller checks the value's shape (see ``mnist_suite.records``): any JSON may be found here.
    """
    try:
        return load_json(path, max_bytes, follow)
    except (OSError, ValueError):
        return None


def load_json(path: Path, max_bytes: int = 64 << 20, follow: bool = True) -> Any:
    """The JSON value at ``path``, read through :func:`read_bounded`.

    Raises OSError (missing, unreadable, not a regular file) or ValueError (more than
    ``max_bytes``, not JSON, nested too deep), each with a short message for a one-line error.
    """
    data = read_bounded(path, max_bytes + 1, follow)
    if len(data) > max_bytes:
        raise ValueError(f"more than {max_bytes} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deep") from None
    except ValueError as exc:
        raise ValueError(f"not JSON ({str(exc).splitlines()[0][:60]})") from None


def read_json_object(path: Path, follow: bool = True) -> dict | None:
    """The JSON object at ``path``, or None if it is missing, unreadable or not an object."""
    value = read_json(path, follow=follow)
    return value if isinstance(value, dict) else None


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _probe(folder: Path, name: str, shown: Path) -> None:
    """Create and remove a temp file in ``folder``: the only honest writability test.

    ``os.access`` answers yes to root on a read-only mount and no to a user an ACL lets in.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:  # the folder exists: whatever refuses a file there is the machine
        raise MachineError(f"{name} {shown}: not writable ({exc.strerror or exc})") from None


# A folder holding both is a run's (``RUNS/<job>/<run-id>/``): a run writes them first, before
# any other record, and a folder of anyone else's rarely holds both names.
RUN_RECORDS = ("config.json", "status.json")


def _holds_run(folder: Path) -> bool:
    return all(os.path.lexists(folder / record) for record in RUN_RECORDS)


def outside_runs(path: Path, name: str, runs: Iterable[Path | None] = ()) -> None:
    """Refuse an output ``path`` that is or lies inside one of the runs folders ``runs``, or
    inside any run folder (one holding :data:`RUN_RECORDS`), wherever it is.

    A file written there would replace a run's record (a finished run read as corrupt and run
    again), a claim or an item's log; a folder there would be listed as a run. Nothing is
    created or probed before this check.

    Raises
    ------
    ConfigError
        ``path`` is such an output.
    """
    target = resolved(path, name)
    for folder in runs:
        if folder is not None:
            top = resolved(folder, "--runs")
            if top == target or top in target.parents:
                raise ConfigError(
                    f"{name} {path}: is inside the runs folder {folder}; write it elsewhere"
                )
    for folder in (target, *target.parents):
        if _holds_run(folder):
            raise ConfigError(
                f"{name} {path}: is inside the run folder {folder}; write it elsewhere"
            )


def writable_folder(path: Path, name: str, runs: Iterable[Path | None] = ()) -> Path:
    """``path`` is a folder we can write into, or one we can create, outside the runs folders
    ``runs`` and every run folder (:func:`outside_runs`). Returns it.

    Raises
    ------
    ConfigError
        ``path`` (or a parent) is a file, lies among runs, or the folder that would hold it is
        not writable.
    """
    path = Path(path)
    outside_runs(path, name, runs)
    found = _existing_ancestor(path)
    if not found.is_dir():
        what = "is a file" if found == path else f"is inside {found}, which is a file"
        raise ConfigError(f"{name} {path}: {what}; expected a folder")
    _probe(found, name, path)
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def writable_file(
    path: Path, name: str, inputs: dict[str, Path | None], runs: Iterable[Path | None] = ()
) -> Path:
    """``path`` is a file we may (over)write: not a folder, not one of ``inputs``, not inside
    the runs folders ``runs`` or any run folder (:func:`outside_runs`).

    Parameters
    ----------
    inputs : dict
        Name -> path of everything the command reads (None entries are ignored).
    runs : iterable of Path
        The runs folders the command uses (None entries are ignored).
    """
    path = Path(path)
    outside_runs(path, name, runs)
    if path.is_dir():
        raise ConfigError(f"{name} {path}: is a folder; expected a file name")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # Replacing it would swap a link, a device or a FIFO for a file the suite wrote.
        raise ConfigError(f"{name} {path}: is not a regular file; choose a new file name")
    for given, source in inputs.items():
        if source is None:
            continue
        source = Path(source)
        if _same(path, source) or resolved(path, name) == resolved(source, given):
            raise ConfigError(f"{name} {path}: is also {given}; refusing to overwrite an input")
        if source.is_dir() and resolved(source, given) in resolved(path, name).parents:
            raise ConfigError(f"{name} {path}: is inside {given} {source}; write it elsewhere")
    writable_folder(path.parent, name)
    return path


def not_overlapping(
    out: Path, name: str, keep: list[tuple[str, Path | None]], runs: tuple[str, ...] = ()
) -> None:
    """Refuse an ``out`` folder, replaced wholesale, that is or holds one of ``keep`` (named,
    each, as the message shows it), or lies among runs (:func:`outside_runs`); ``runs`` names
    the ``keep`` entries that are runs folders.

    Replacing it would delete what it holds; among runs it would be read as runs.
    """
    target = resolved(out, name)
    for given, folder in keep:
        if folder is None:
            continue
        folder = resolved(folder, given)
        if folder == target or target in folder.parents:
            raise ConfigError(
                f"{name} {out}: replacing it would delete {given} {folder}; choose another folder"
            )
    outside_runs(out, name, [folder for given, folder in keep if given in runs])
