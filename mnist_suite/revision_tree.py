"""A compared revision's files on this host, for building its images: a copy the suite makes.

``compare --containers`` never checks a revision out where its links could lead: ``git archive
SHA`` is extracted into a fresh folder under ``build/ab/`` (``context-SHA12-*``) with tarfile's
``data`` filter, every committed symbolic link checked to stay inside the copy, and the
revision's own ``build`` entry left out (the suite makes that folder itself, for the wheels its
image build mounts). The folder is the image build's context and is removed when compare ends.

Reads in the copy (:func:`regular_file`, :func:`read_bytes`) follow no link at all: a Dockerfile,
lock file or ``pyproject.toml`` that is a link counts as absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from mnist_suite.errors import ConfigError, RevisionError
from mnist_suite.files import read_bounded

# The folder the suite fills with wheels for the image build; the revision's own is dropped.
OWN_FOLDER = "build"


def _inside(name: str, target: str) -> bool:
    """Does a link at ``name`` to ``target`` stay inside the tree, whatever other links hold?

    Only leading ``..`` steps are allowed: they climb real folders (a git tree has no entry
    below a link), so counting them is exact; a ``..`` after a name could climb out of a folder
    that is itself a link. What follows descends, through links each checked the same way.
    """
    if not target or target.startswith("/"):
        return False
    parts = PurePosixPath(target).parts
    ups = next((i for i, p in enumerate(parts) if p != ".."), len(parts))
    return ".." not in parts[ups:] and ups <= len(PurePosixPath(name).parent.parts)


def _keep(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    name = member.name.removeprefix("./")
    if name == OWN_FOLDER or name.startswith(OWN_FOLDER + "/"):
        return None
    # The data filter's own link checks resolve paths on disk (os.path.realpath), which older
    # Pythons let a chain of links defeat; the lexical rule above cannot be.
    if member.islnk() or (member.issym() and not _inside(name, member.linkname)):
        raise tarfile.LinkOutsideDestinationError(member, member.linkname)
    return tarfile.data_filter(member, dest)


@contextlib.contextmanager
def extracted(repo: Path, revision, parent: Path) -> Iterator[Path]:
    """A fresh copy of ``revision``'s tree (an :class:`mnist_suite.ab.Revision`'s commit) under
    ``parent``, removed afterwards; a :class:`ConfigError` when a link in it leads outside."""
    parent.mkdir(parents=True, exist_ok=True)
    tree = Path(tempfile.mkdtemp(prefix=f"context-{revision.sha[:12]}-", dir=parent))
    try:
        os.chmod(tree, 0o755)  # read by the containers' user through a read-only mount
        _extract(repo, revision, tree)
        yield tree
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _extract(repo: Path, revision, tree: Path) -> None:
    archive = subprocess.Popen(
        ["git", "-C", str(repo), "archive", "--format=tar", revision.sha],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    refused: tarfile.TarError | None = None
    try:
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            tar.extractall(tree, filter=_keep)
    except tarfile.TarError as exc:
        refused = exc
    finally:
        archive.stdout.close()  # git stops at once if the copy was refused half-way
        said = archive.stderr.read().decode("utf-8", "replace").strip()
        archive.stderr.close()
        code = archive.wait()
    if isinstance(refused, tarfile.FilterError):
        raise ConfigError(f"{revision}: its tree cannot be copied safely: {refused}")
    if code or refused:
        last = said.splitlines()[-1] if said else str(refused or f"exit {code}")
        raise RevisionError(f"{revision}: git archive failed: {last[:300]}")


def regular_file(tree: Path, name: str) -> Path | None:
    """``tree/name`` if it is a regular file reached through folders, no link on the way."""
    path = tree
    for part in PurePosixPath(name).parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return path if stat.S_ISREG(mode) else None


def read_bytes(tree: Path, name: str, limit: int = 16 << 20) -> bytes | None:
    """The content of :func:`regular_file` ``name`` (at most ``limit`` bytes), or None."""
    path = regular_file(tree, name)
    if path is None:
        return None
    try:
        data = read_bounded(path, limit + 1, follow=False)
    except OSError:
        return None
    return data if len(data) <= limit else None
