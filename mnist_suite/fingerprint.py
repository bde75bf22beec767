"""Code fingerprints: which version of the source a run executed.

A job's fingerprint hashes the **module closure** it runs: its own module and the runner
(:data:`RUNNER`), plus every ``mnist_suite`` module they import, found by walking the ``import``
statements of the source (``ast``, function-level imports included, nothing executed). Parent
packages' ``__init__.py`` count, since importing a submodule runs them. The other job modules
do not: the registry imports a job's module only when that job is asked for
(:func:`mnist_suite.jobs.find_job`), so a run of one job executes none of its siblings' code,
and editing one job leaves every other job's runs current.

The hash covers the **meaning** of each file, not its bytes: the sorted pairs (path relative to
the package, ``ast.dump`` of the parsed module with docstrings removed). A comment, a docstring,
blank lines or a re-wrapped expression leave it unchanged; any change to what runs changes it.

A plugin's job (:mod:`mnist_suite.plugins`) is fingerprinted the same way from the modules
that define its train, config and cells: every module of its own package they reach (hashed
under the package's name, so a plugin's file never stands for one of ours), with the suite
modules those import and the runner (:func:`of_plugin`).

Why a static closure rather than a hand-kept list in the registry or the commit: it follows
the code by itself (a new import is covered the day it is written), it does not change when
the README, the report or another job changes, and it is the same inside a container, which
runs the same source tree. What it does not see: third-party libraries (their versions are in
``config.json``'s ``versions``, the plugins' too), the data (checksum-verified on load), and
the other job modules a process that runs several jobs (a warm worker, ``list``) has imported:
a job module's body only defines its functions and config and registers its jobs, so what it
leaves behind is never called by another job.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.util
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
    return _locate(name, {PACKAGE: root})


def _locate(name: str, places: dict[str, Path]) -> Path | None:
    """The source file of module ``name`` whose top-level package lives at ``places[top]`` (a
    package's folder, or a single module's file), or None."""
    parts = name.split(".")
    place = places.get(parts[0])
    if place is None:
        return None
    if place.suffix == ".py":  # a top-level module, not a package
        return place if len(parts) == 1 and place.is_file() else None
    base = place.joinpath(*parts[1:])
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


def _parse(path: Path) -> ast.Module:
    stat = path.stat()
    return _parse_version(path, stat.st_mtime_ns, stat.st_size)


@cache
def _parse_version(path: Path, mtime_ns: int, size: int) -> ast.Module:
    # Keyed by the file's version: closures and digests of several jobs parse each file once.
    return ast.parse(path.read_bytes(), filename=str(path))


def closure(roots: tuple[str, ...], root: Path) -> dict[str, Path]:
    """``{module name: file}`` of ``roots`` and every ``mnist_suite`` module they reach."""
    return _closure(roots, {PACKAGE: root})


def _closure(roots: tuple[str, ...], places: dict[str, Path]) -> dict[str, Path]:
    """:func:`closure` over the packages of ``places`` (see :func:`_locate`)."""
    seen: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _locate(name, places)
        if path is None:
            continue  # third-party, or a name imported from a module (not a module itself)
        seen[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        todo += sorted(_imported(_parse(path), name, path.name == "__init__.py"))
    return seen


def meaning(tree: ast.Module) -> bytes:
    """The parsed module without docstrings, dumped: equal for sources that run the same."""
    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            first = body[0] if body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False).encode()


def digest(files: dict[str, Path], root: Path) -> str:
    """Short sha256 of the sorted (relative path, meaning) pairs of ``files``."""
    return _digest([(p.relative_to(root).as_posix(), p) for p in files.values()])


def _digest(entries: list[tuple[str, Path]]) -> str:
    """Short sha256 of ``(name, file)`` entries, in the order of their names."""
    h = hashlib.sha256()
    for name, path in sorted(entries):
        rel = name.encode()
        data = meaning(_parse(path))
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
    """Fingerprint of ``job`` (a registry :class:`~mnist_suite.jobs.Job`), from its module;
    a plugin's from the modules of its train, config and cells (:func:`of_plugin`). None for
    a Job made elsewhere in code: readers check a run's code by its job's name
    (:func:`for_job_name`), which finds only built-in and installed jobs."""
    from mnist_suite import plugins

    module = getattr(job.train, "__module__", "") or ""
    if module.split(".")[0] == PACKAGE:
        return of_module(module)
    if not plugins.installed(job):
        return None
    parts = (job.train, job.config, job.cells)
    return of_plugin(tuple(sorted({getattr(p, "__module__", "") or "" for p in parts if p})))


def _place(top: str) -> Path | None:
    """Where the installed top-level module or package ``top`` lives (see :func:`_locate`)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None  # a built-in or compiled module: no source to hash
    origin = Path(spec.origin).resolve()
    return origin.parent if spec.submodule_search_locations is not None else origin


@cache
def of_plugin(modules: tuple[str, ...]) -> str | None:
    """Fingerprint of a plugin job defined in ``modules`` (outside ``mnist_suite``): the
    closure of those modules within their own packages, the ``mnist_suite`` modules it
    imports and the runner, as :func:`of_module` hashes ours. None when a module has no source
    file to hash."""
    tops = {name.split(".")[0] for name in modules}
    places = {top: _place(top) for top in tops - {PACKAGE}}
    if not modules or None in places.values() or "" in tops:
        return None
    own = _closure(modules, places)
    if not set(modules) <= set(own):
        return None
    imported = set()
    for name, path in own.items():
        tree = _parse(path)
        imported |= _imported(tree, name, path.name == "__init__.py")
    suite = tuple(sorted(n for n in imported if n.split(".")[0] == PACKAGE))
    files = closure((*suite, *RUNNER), SOURCE_ROOT)
    entries = [(p.relative_to(SOURCE_ROOT).as_posix(), p) for p in files.values()]
    for name, path in own.items():
        place = places[name.split(".")[0]]
        rel = path.relative_to(place.parent).as_posix()
        entries.append((f"plugin:{rel}", path))
    return _digest(entries)


def for_job_name(name: str) -> str | None:
    """Fingerprint of the job ``name``; None when no such job exists here, or when it is a
    plugin that cannot be loaded (warned: its runs are then read without a code check)."""
    from mnist_suite.jobs import find_job

    job = find_job(name, strict=False)
    return of_job(job) if job is not None else None


def checkout_note(start: Path | None = None) -> str | None:
    """A line when the code running is not the checkout the command runs in.

    ``pip install .`` copies the package: edits in the clone then change nothing this command
    runs, and its runs are fingerprinted as the installed copy. Inside a checkout of the suite
    (a folder above ``start`` holding ``pyproject.toml`` and ``mnist_suite/``) whose code means
    something else than the running copy's, say so.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        source = folder / PACKAGE
        if (folder / "pyproject.toml").is_file() and (source / "__init__.py").is_file():
            break
    else:
        return None
    if source.resolve() == SOURCE_ROOT:
        return None
    try:
        mine = digest({str(p): p for p in SOURCE_ROOT.rglob("*.py")}, SOURCE_ROOT)
        theirs = digest({str(p): p for p in source.rglob("*.py")}, source)
    except (OSError, SyntaxError, ValueError):
        return None  # not a tree we can read: nothing to say about it
    if mine == theirs:
        return None
    return (
        f"note: running the installed mnist-suite in {SOURCE_ROOT}, whose code differs from "
        f"the checkout in {folder} (pip install -e . runs the checkout)"
    )
