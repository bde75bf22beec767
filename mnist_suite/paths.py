"""Output paths checked before anything is written: a folder we can write, never an input.

Every command validates its outputs with these before it creates or deletes anything, so a
bad ``--runs``/``--out`` ends in one ``error:`` line instead of a traceback halfway through.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mnist_suite.errors import ConfigError
from mnist_suite.limits import resolved


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _probe(folder: Path, flag: str, shown: Path) -> None:
    """Create and remove a temp file in ``folder``: the only honest writability test.

    ``os.access`` answers yes to root on a read-only mount and no to a user an ACL lets in.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ConfigError(f"{flag} {shown}: not writable ({exc.strerror or exc})") from None


def writable_folder(path: Path, flag: str) -> Path:
    """``path`` is a folder we can write into, or one we can create. Returns it.

    Raises
    ------
    ConfigError
        ``path`` (or a parent) is a file, or the folder that would hold it is not writable.
    """
    path = Path(path)
    found = _existing_ancestor(path)
    if not found.is_dir():
        what = "is a file" if found == path else f"is inside {found}, which is a file"
        raise ConfigError(f"{flag} {path}: {what}; expected a folder")
    _probe(found, flag, path)
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def writable_file(path: Path, flag: str, inputs: dict[str, Path | None]) -> Path:
    """``path`` is a file we may (over)write: not a folder, not one of ``inputs``.

    Parameters
    ----------
    inputs : dict
        Flag -> path of everything the command reads (None entries are ignored).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; expected a file name")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # Replacing it would swap a link, a device or a FIFO for a file the suite wrote.
        raise ConfigError(f"{flag} {path}: is not a regular file; choose a new file name")
    for name, source in inputs.items():
        if source is None:
            continue
        source = Path(source)
        if _same(path, source) or resolved(path, flag) == resolved(source, name):
            raise ConfigError(f"{flag} {path}: is also {name}; refusing to overwrite an input")
        if source.is_dir() and resolved(source, name) in resolved(path, flag).parents:
            raise ConfigError(f"{flag} {path}: is inside {name} {source}; write it elsewhere")
    writable_folder(path.parent, flag)
    return path


def not_overlapping(out: Path, flag: str, keep: list[tuple[str, Path | None]]) -> None:
    """Refuse an ``out`` folder, replaced wholesale, that is, holds or sits in one of ``keep``.

    Replacing it would delete what it holds; inside a runs folder it would be read as runs.
    """
    target = resolved(out, flag)
    for name, folder in keep:
        if folder is None:
            continue
        folder = resolved(folder, name)
        if folder == target or target in folder.parents:
            raise ConfigError(
                f"{flag} {out}: replacing it would delete {name} {folder}; choose another folder"
            )
        if folder in target.parents and name == "--runs":
            raise ConfigError(f"{flag} {out}: is inside {name} {folder}; choose another folder")
