"""Code fingerprints: which version of the source a run executed.

A job's fingerprint hashes the **module closure** it runs: its own module and the runner
(:data:`RUNNER`), plus every ``mnist_suite`` module they import, found by walking the ``import``
statements of the source (``ast``, function-level imports included, nothing executed). Parent
packages' ``__init__.py`` count, since importing a submodule runs them. The hash covers the
sorted (path relative to the package, file bytes) pairs of the closure.

Why a static closure rather than a hand-kept list in the registry or the commit: it follows
the code by itself (a new import is covered the day it is written), it does not change when
the README, the report or another job changes, and it is the same inside a container, which
runs the same source tree. What it does not see: third-party libraries (their versions are in
``config.json``'s ``versions``) and the data (checksum-verified on load).
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

import mnist_suite

PACKAGE = "mnist_suite"
SOURCE_ROOT = Path(mnist_suite.__file__).resolve().parent
# What runs every job besides the job's module: the run directory writer and the data loader.
RUNNER = ("mnist_suite.runs", "mnist_suite.data")
LENGTH = 12  # hex characters kept: plenty to tell versions apart, short enough for a table


def module_file(name: str, root: Path) -> Path | None:
    """The source file of ``mnist_suite`` module ``name`` under ``root``, or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _imported(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Module names an ``ast`` tree imports (``from a import b`` yields ``a`` and ``a.b``)."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def closure(roots: tuple[str, ...], root: Path) -> dict[str, Path]:
    """``{module name: file}`` of ``roots`` and every ``mnist_suite`` module they reach."""
    seen: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name, root)
        if path is None:
            continue  # third-party, or a name imported from a module (not a module itself)
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        tree = ast.parse(path.read_bytes(), filename=str(path))
        todo += sorted(_imported(tree, name, path.name == "__init__.py"))
    return seen


def digest(files: dict[str, Path], root: Path) -> str:
    """Short sha256 of the sorted (relative path, bytes) pairs of ``files``."""
    h = hashlib.sha256()
    for path in sorted(files.values(), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:LENGTH]


def of_module(module: str, root: Path | None = None) -> str | None:
    """Fingerprint of a job defined in ``module`` of the source under ``root`` (default
    :data:`SOURCE_ROOT`); None for code outside ``mnist_suite``."""
    return _of_module(module, Path(root or SOURCE_ROOT))


@cache
def _of_module(module: str, root: Path) -> str | None:
    # Cached per process: the source does not change under a running suite.
    if module_file(module, root) is None:
        return None
    return digest(closure((module, *RUNNER), root), root)


def of_job(job) -> str | None:
    """Fingerprint of ``job`` (a registry :class:`~mnist_suite.jobs.Job`), from its module."""
    return of_module(getattr(job.train, "__module__", "") or "")


def for_job_name(name: str) -> str | None:
    """Fingerprint of the registered job ``name``; None when no such job exists here."""
    from mnist_suite.jobs import all_jobs

    job = all_jobs().get(name)
    return of_job(job) if job is not None else None
