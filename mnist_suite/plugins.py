"""Jobs of other packages: the entry point group ``mnist_suite.jobs``.

A distribution adds a job by naming it in its ``pyproject.toml``::

    [project.entry-points."mnist_suite.jobs"]
    logreg = "logreg_job:JOB"

The entry point's name is the job's name and its object a :class:`mnist_suite.jobs.Job`, the
type of every built-in job: the same config, train, profiles and report fields, run by the
same runner into the same run folders. Plugins are found in the installed metadata
(:func:`importlib.metadata.entry_points`), so only code the user installed (or put on
``PYTHONPATH`` with its metadata) adds a job; nothing in a runs folder, a plan or an argument
names a module to import.

A plugin's module is imported only when its job is asked for by name (:func:`load`) or every
job is listed (:func:`load_all`), once per process. A plugin that cannot be loaded (its import
fails, its object is not a valid Job, its name is taken) never stops a built-in job: asking for
it is one :class:`~mnist_suite.errors.ConfigError` line, and listing every job leaves it out
with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from functools import cache
from importlib import metadata

from mnist_suite.errors import ConfigError
from mnist_suite.text import printable

GROUP = "mnist_suite.jobs"
log = logging.getLogger(__name__)

# name -> the loaded Job, or the line saying why it cannot be loaded (each plugin is tried once)
_loaded: dict[str, object] = {}
_warned: set[str] = set()  # the plugins already said to be left out


@cache
def entry_points() -> dict[str, tuple[metadata.EntryPoint, ...]]:
    """The group's entry points by job name (read once per process: installing a plugin takes
    effect in the next command)."""
    found: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=GROUP):
        same = found.setdefault(ep.name, [])
        if all(e.value != ep.value for e in same):  # one distribution seen twice on the path
            same.append(ep)
    return {name: tuple(eps) for name, eps in sorted(found.items())}


def distributions() -> dict[str, str]:
    """``{distribution: version}`` of the installed plugins (what a run records of them)."""
    found = {}
    for eps in entry_points().values():
        for ep in eps:
            if ep.dist is not None:
                found[ep.dist.name] = ep.dist.version
    return dict(sorted(found.items()))


def _origin(ep: metadata.EntryPoint) -> str:
    """``logreg_job:JOB of mnist-suite-logreg 0.1.0``: where a plugin job comes from."""
    dist = f" of {ep.dist.name} {ep.dist.version}" if ep.dist is not None else ""
    return f"{ep.value}{dist}"


def _try(name: str, builtin: Collection[str]):
    """The Job of plugin ``name``, or the one line saying why it cannot be had."""
    from mnist_suite.jobs import Job

    eps = entry_points().get(name, ())
    where = f"plugin job {name!r}"
    if len(eps) > 1:
        return f"{where}: named by several plugins ({', '.join(map(_origin, eps))})"
    (ep,) = eps
    where += f" ({_origin(ep)})"
    if name in builtin:
        return f"{where}: a built-in job has that name"
    try:
        job = ep.load()
    except Exception as exc:  # any failure of the plugin's own import is the plugin's fault
        return f"{where}: cannot be loaded: {type(exc).__name__}: {exc}".splitlines()[0]
    if not isinstance(job, Job):
        return f"{where}: is a {type(job).__name__}, not a mnist_suite.jobs.Job"
    if job.name != name:
        return f"{where}: its Job is named {job.name!r}; the entry point must have its name"
    return job


def load(name: str, builtin: Collection[str], strict: bool = True) -> object | None:
    """The plugin job ``name`` (a :class:`~mnist_suite.jobs.Job`), None when no plugin names
    it. One that cannot be loaded is a ConfigError (one line), or with ``strict`` False None
    and a warning (once per process). ``builtin``: the built-in job names."""
    if name not in entry_points():
        return None
    if name not in _loaded:
        _loaded[name] = _try(name, builtin)
    found = _loaded[name]
    if not isinstance(found, str):
        return found
    if strict:
        raise ConfigError(found)
    if name not in _warned:
        _warned.add(name)
        log.warning("%s; left out", printable(found))
    return None


def refuse_in_images(names: Collection[str]) -> None:
    """ConfigError (one line) for plugin jobs among ``names`` where the items run in the
    suite's images (containers, Kubernetes): an image holds the suite alone."""
    from mnist_suite.jobs import builtin_names

    found = sorted(set(names) & set(entry_points()) - builtin_names())
    if found:
        raise ConfigError(
            f"{', '.join(found)}: a plugin's job runs from this installation, not in the "
            "suite's images: run it here (without --containers) or on Slurm"
        )


def installed(job: object) -> bool:
    """Is ``job`` a plugin's Job, loaded through its entry point in this process?"""
    return any(found is job for found in _loaded.values())


def load_all(builtin: Collection[str]) -> dict[str, object]:
    """Every plugin job that can be loaded, by name; each one that cannot is left out with a
    warning (once per process)."""
    found = {name: load(name, builtin, strict=False) for name in entry_points()}
    return {name: job for name, job in found.items() if job is not None}
