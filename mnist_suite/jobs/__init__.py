"""The job registry: every module in this package registers its jobs on import, and every
installed plugin adds its own (:mod:`mnist_suite.plugins`, the entry point group
``mnist_suite.jobs``): one :class:`Job` type for both.

The registry is lazy. It knows every built-in job's name and module by reading the modules'
``Job(name="...")`` calls from their source (:func:`declared`, nothing imported); a job's module
is imported when that job is asked for (:func:`find_job`), every module only when every job is
(:func:`all_jobs`: ``list``, the report). A run of one job therefore executes no other job's
code, and its code fingerprint (:mod:`mnist_suite.fingerprint`) covers its own module alone.

A job is a name, a frozen config dataclass whose defaults are the ``full`` profile, the
overrides that make its ``quick`` profile, and a ``train(config, run) -> metrics`` function.
A job that is a batch (a sweep, a grid) also has ``cells(config) -> [(label, config), ...]``:
a plain list addressable by index, so one cell can run alone (``--index 7``).
A job also declares what the report needs to know about it: its family, the original's printed
figures it reproduces (faithful jobs) or the original job it improves on, how many seeds
the full suite runs by default, and the TensorBoard scalars its runs write.
Job modules import TensorFlow only inside ``train``: listing jobs never loads it. A job
module's body only defines and registers: it changes nothing another job would read.
A plugin's module is imported only when its job is asked for by name or every job is listed.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import logging
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mnist_suite.config import apply_overrides, overridable
from mnist_suite.defaults import PROFILES
from mnist_suite.errors import ConfigError, ParameterError, SuiteError
from mnist_suite.limits import MAX_CELLS, check_config

log = logging.getLogger(__name__)

# classifier and reconstruction have report sections of their own; "other" is shown by the
# report's generic table of every figure over seeds (mnist_suite.report.generic).
FAMILIES = ("classifier", "reconstruction", "other")
# A job's name names its runs folder and reaches scripts and manifests: plain words only.
NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
CELL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}$")  # a cell's label, in its run id


@dataclass(frozen=True)
class Job:
    name: str
    summary: str  # one line, shown by `mnist-suite list`
    config: type  # frozen dataclass; its defaults are the full profile
    train: Callable[[Any, Any], dict]
    quick: dict[str, Any] = field(default_factory=dict)  # overrides for the quick profile
    cells: Callable[[Any], list[tuple[str, Any]]] | None = None
    uses_tensorflow: bool = False
    family: str = "classifier"  # classifier | reconstruction | other: which report section
    # The original's printed figures this job reproduces: metric -> the figure as printed, or
    # "cell:metric" for a batch job ("96.08%" for an accuracy, "0.6313" in the original's units
    # for a loss; its digits are its precision, "about 92.5%" where the source gives none:
    # mnist_suite.originals). Empty: not faithful.
    original_figures: dict[str, str] = field(default_factory=dict)
    improves_on: str | None = None  # the faithful job this one does better
    # Seeds the full profile of the suite runs when --seeds is not given (the quick profile
    # runs one). 5 by default; the grid and long jobs may use fewer, never under 2.
    seed_count: int = 5
    dev_note: str = ""  # how the job holds out data for choices, when it is not the dev split
    # Rough wall seconds per item (quick, full profile) on one core of a 2-core x86-64 VM, warm
    # (the median of a suite's runs): estimates before any run of the item is recorded.
    seconds: tuple[float, float] = (10.0, 60.0)
    # The cells far from ``seconds`` (cell -> (quick, full)): a pool starts the longest first,
    # so one long cell under its job's estimate is started late and ends the batch alone.
    cell_seconds: dict[str, tuple[float, float]] = field(default_factory=dict)
    # The TensorBoard scalars its runs may write (names of mnist_suite.tb.SCALARS): the metrics
    # of the job's HParams experiment.
    scalars: tuple[str, ...] = ()
    # The figures ``train`` returns, each with its meaning (what it measures, in which units):
    # the report's generic table shows them beside the figures.
    metrics: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise ValueError(
                f"job name {self.name!r}: expected lower-case letters, digits and '-' "
                "(a letter first, at most 40)"
            )
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family!r} not in {FAMILIES}")
        if self.seed_count < 2:
            raise ValueError(
                f"{self.name}: seed_count={self.seed_count} must be >= 2 (a spread needs two)"
            )
        if not callable(self.train) or not (self.cells is None or callable(self.cells)):
            raise ValueError(f"{self.name}: train (and cells, if given) must be functions")
        _check_config_class(self.name, self.config, self.quick)
        if not isinstance(self.metrics, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() and "\n" not in v
            for k, v in self.metrics.items()
        ):
            raise ValueError(f"{self.name}: metrics must map each figure's name to one line")

    def expected_seconds(self, cell: str, profile: str) -> float:
        """Rough wall seconds of one item of ``cell`` (before any run of it is recorded)."""
        quick, full = self.cell_seconds.get(cell, self.seconds)
        return quick if profile == "quick" else full

    @property
    def faithful(self) -> bool:
        """Reproduces an original experiment as it was run (its split, its recipe)."""
        return bool(self.original_figures)

    def printed(self, metric: str, cell: str = "") -> str | None:
        """The original's ``metric`` (of ``cell`` for a batch job) as it printed it, or None."""
        figures = self.original_figures
        return figures.get(f"{cell}:{metric}" if cell else metric, figures.get(metric))

    def check_runtime(self) -> None:
        """Refuse, before a run of this job starts, to run without the TensorFlow it needs."""
        require_tensorflow([self.name])

    def default_seeds(self, profile: str) -> tuple[int, ...]:
        """Seeds to run when none are given: ``0..seed_count-1`` for the full profile, ``0``
        else."""
        return tuple(range(self.seed_count)) if profile == "full" else (0,)

    def resolve(self, profile: str = "full", overrides: list[str] = ()) -> Any:
        """The config for ``profile`` with ``key=value`` overrides applied and validated."""
        if profile not in PROFILES:
            raise ConfigError(
                f"unknown profile {profile!r} (expected one of {', '.join(PROFILES)})"
            )
        with self._refusals("config"):
            config = self.config()
            if profile == "quick":
                config = dataclasses.replace(config, **self.quick)
            config = apply_overrides(config, list(overrides))
            if not self.cells:
                check_config(config)
        return config

    @contextlib.contextmanager
    def _refusals(self, what: str):
        """Whatever a config's own checks raise is a refused value: one line, never a
        traceback (a plugin's config may raise any exception, not only ParameterError)."""
        try:
            yield
        except (SuiteError, ParameterError):
            raise
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise ConfigError(f"{self.name}: its {what} refused the values ({why})") from None

    def expand(self, config: Any) -> list[tuple[str, Any]]:
        """The batch of (cell label, cell config); a single run is one unlabelled cell."""
        cells = [("", config)]
        if self.cells:
            with self._refusals("cells"):
                cells = [(label, cell_config) for label, cell_config in self.cells(config)]
        if not cells:
            raise ConfigError(f"{self.name}: the configuration expands to no runs (empty grid)")
        if len(cells) > MAX_CELLS:
            raise ConfigError(f"{self.name}: {len(cells)} cells, more than {MAX_CELLS}")
        for label, cell_config in cells if self.cells else ():
            if not isinstance(label, str) or not CELL.fullmatch(label):
                raise ConfigError(
                    f"{self.name}: cell {str(label)[:40]!r}: expected letters, digits and "
                    "._+=- (a cell's label names its run folder)"
                )
            if not dataclasses.is_dataclass(cell_config) or isinstance(cell_config, type):
                raise ConfigError(f"{self.name}: cell {label}: its config is not a dataclass")
        labels = [label for label, _ in cells]
        if len(set(labels)) < len(labels):
            twice = next(label for label in labels if labels.count(label) > 1)
            raise ConfigError(
                f"{self.name}: cell {twice} appears twice (a value repeated in an override list)"
            )
        if self.cells:
            for _, cell_config in cells:
                check_config(cell_config)
        return cells

    def hparams(self, cell: str, config: Any, profile: str, seed: int) -> dict[str, Any]:
        """TensorBoard HParams of one run: job, cell, profile, seed and every config value.

        Tuples become their command-line spelling (``256,128``) and None ``"none"``, since
        HParams take only bool, int, float and str.
        """
        values: dict[str, Any] = {"job": self.name, "cell": cell, "profile": profile, "seed": seed}
        for key, value in dataclasses.asdict(config).items():
            if isinstance(value, tuple | list):
                value = ",".join(map(str, value))
            values[key] = "none" if value is None else value
        return values


def _check_config_class(name: str, config: Any, quick: Any) -> None:
    """A job's config is a frozen dataclass whose every field has a default of a kind
    ``--set`` can give (bool, int, float, str, a tuple of them, or None), and its quick
    profile names only its fields: ValueError naming what is not."""
    params = getattr(config, "__dataclass_params__", None)
    if not isinstance(config, type) or params is None or not params.frozen:
        raise ValueError(f"{name}: config must be a frozen dataclass (@dataclass(frozen=True))")
    fields = {f.name: f for f in dataclasses.fields(config)}
    try:
        hints = typing.get_type_hints(config)
    except Exception as exc:  # an annotation naming what its module does not define
        raise ValueError(f"{name}: config's annotations cannot be read ({exc})") from None
    for f in fields.values():
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing or not f.init:
            raise ValueError(f"{name}: config field {f.name} needs a default (the full profile)")
        if not overridable(hints.get(f.name)):
            raise ValueError(
                f"{name}: config field {f.name} is {hints.get(f.name)}; expected bool, int, "
                "float, str, a tuple of one of them, or one of them | None"
            )
    if not isinstance(quick, dict) or set(quick) - set(fields):
        unknown = sorted(set(quick) - set(fields)) if isinstance(quick, dict) else quick
        raise ValueError(f"{name}: quick names no config field {unknown}")


# The jobs registered in this process: a built-in job module's on its import, any made in code.
JOBS: dict[str, Job] = {}


def register(job: Job) -> Job:
    if job.name in JOBS:
        raise ValueError(f"job {job.name!r} registered twice")
    JOBS[job.name] = job
    return job


def declared(package: Path) -> dict[str, str]:
    """``{job name: module}`` of the built-in jobs of the ``mnist_suite`` source at ``package``,
    read from the ``Job(name="...")`` calls of its job modules (``jobs/*.py``) without running
    them. ValueError for a name two modules declare."""
    found: dict[str, str] = {}
    for path in sorted((package / "jobs").glob("*.py")):
        if path.stem == "__init__":
            continue
        module = f"{__name__}.{path.stem}"
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            name = _job_name(node)
            if name is not None and found.setdefault(name, module) != module:
                raise ValueError(f"job {name!r} declared in {found[name]} and {module}")
    return dict(sorted(found.items()))


def _job_name(node: ast.AST) -> str | None:
    """The name of a ``Job(name="...")`` call (or ``Job("...", ...)``), else None."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    if node.func.id != Job.__name__:
        return None
    named = {k.arg: k.value for k in node.keywords}.get("name", node.args[0] if node.args else None)
    return named.value if isinstance(named, ast.Constant) and isinstance(named.value, str) else None


@cache
def _builtin() -> dict[str, str]:
    # Read once per process: the source does not change under a running command.
    return declared(Path(__file__).resolve().parent.parent)


def _import(name: str) -> Job:
    """The built-in job ``name``, its module imported if it is not yet."""
    if name not in JOBS:
        module = _builtin()[name]
        importlib.import_module(module)
        if name not in JOBS:  # its Job(name=...) call is not the one that registers it
            raise ValueError(f"{module} declares the job {name!r} but does not register it")
    return JOBS[name]


def builtin_names() -> set[str]:
    """The names of the built-in jobs and those registered in code (not plugins), without
    importing any job's module."""
    return {*_builtin(), *JOBS}


def job_names() -> list[str]:
    """The name of every job that can be asked for (built-in, registered in code, or a plugin's
    entry point), sorted, without importing any job's module."""
    from mnist_suite import plugins

    return sorted(builtin_names() | set(plugins.entry_points()))


def builtin_jobs() -> dict[str, Job]:
    """Import every job module of this package once and return every job they and code
    registered, sorted by name."""
    for name in _builtin():
        _import(name)
    return dict(sorted(JOBS.items()))


def all_jobs() -> dict[str, Job]:
    """Every job, built-in and from plugins, sorted by name: every job module is imported. A
    plugin that cannot be loaded is left out, with one warning (asking for its job by name says
    why: :func:`get_job`)."""
    from mnist_suite import plugins

    jobs = builtin_jobs()
    return dict(sorted({**plugins.load_all(set(jobs)), **jobs}.items()))


def find_job(name: str, strict: bool = True) -> Job | None:
    """The job ``name`` (built-in first, then a plugin of that name), or None if none exists.
    Only that job's module is imported. A plugin of that name that cannot be loaded is a
    ConfigError (one line), or with ``strict`` False None and a warning."""
    from mnist_suite import plugins

    builtin = builtin_names()
    return _import(name) if name in builtin else plugins.load(name, builtin, strict)


def describe(job: Job) -> dict:
    """A job as plain data (``list --json``): what it is, how it is run and judged, and each
    profile's config (the full profile's defaults, the quick one with its overrides)."""
    return {
        "name": job.name,
        "summary": job.summary,
        "family": job.family,
        "batch": job.cells is not None,
        "uses_tensorflow": job.uses_tensorflow,
        "original_figures": dict(job.original_figures),
        "improves_on": job.improves_on,
        "seed_count": job.seed_count,
        "dev_note": job.dev_note,
        "metrics": dict(job.metrics),
        "config": {p: dataclasses.asdict(job.resolve(p)) for p in PROFILES},
    }


# Former names of the jobs that reproduce the original projects: still accepted, with a notice.
DEPRECATED_NAMES = {f"{base}-seed": f"{base}-original" for base in ("softmax", "mlp", "sgd", "ae")}


def require_tensorflow(names) -> None:
    """Refuse, before anything runs, jobs that need TensorFlow where it is not installed."""
    import importlib.util

    need = sorted({n for n in names if get_job(n).uses_tensorflow})
    if need and importlib.util.find_spec("tensorflow") is None:
        raise ConfigError(
            f"{', '.join(need)} need TensorFlow, which is not installed: "
            "pip install 'mnist-suite[tf]' (the NumPy jobs, plan, runs, compare and report "
            "work without it)"
        )


def get_job(name: str) -> Job:
    if name in DEPRECATED_NAMES:
        new = DEPRECATED_NAMES[name]
        log.warning("job %r is now called %r; the old name is deprecated", name, new)
        name = new
    job = find_job(name)
    if job is None:
        raise ConfigError(f"unknown job {name!r} (available: {', '.join(job_names())})")
    return job
