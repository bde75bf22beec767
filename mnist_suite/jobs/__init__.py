"""The job registry: every module in this package registers its jobs on import.

A job is a name, a frozen config dataclass whose defaults are the ``full`` profile, the
overrides that make its ``quick`` profile, and a ``train(config, run) -> metrics`` function.
A job that is a batch (a sweep, a grid) also has ``cells(config) -> [(label, config), ...]``:
a plain list addressable by index, so one cell can run alone (``--index 7``).
A job also declares what the report needs to know about it: its family, the original's printed
figures it reproduces (faithful jobs) or the original job it improves on, how many seeds
the full suite runs by default, and the TensorBoard scalars its runs write.
Job modules import TensorFlow only inside ``train``: listing jobs never loads it.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mnist_suite.config import apply_overrides, config_hash
from mnist_suite.defaults import PROFILES
from mnist_suite.errors import ConfigError
from mnist_suite.limits import MAX_CELLS, check_config

log = logging.getLogger(__name__)

FAMILIES = ("classifier", "reconstruction")


@dataclass(frozen=True)
class Job:
    name: str
    summary: str  # one line, shown by `mnist-suite list`
    config: type  # frozen dataclass; its defaults are the full profile
    train: Callable[[Any, Any], dict]
    quick: dict[str, Any] = field(default_factory=dict)  # overrides for the quick profile
    cells: Callable[[Any], list[tuple[str, Any]]] | None = None
    uses_tensorflow: bool = False
    family: str = "classifier"  # classifier | reconstruction: which report section reads it
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

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family!r} not in {FAMILIES}")
        if self.seed_count < 2:
            raise ValueError(
                f"{self.name}: seed_count={self.seed_count} must be >= 2 (a spread needs two)"
            )

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
        config = self.config()
        if profile == "quick":
            config = dataclasses.replace(config, **self.quick)
        config = apply_overrides(config, list(overrides))
        if not self.cells:
            check_config(config)
        return config

    def expand(self, config: Any) -> list[tuple[str, Any]]:
        """The batch of (cell label, cell config); a single run is one unlabelled cell."""
        cells = self.cells(config) if self.cells else [("", config)]
        if not cells:
            raise ConfigError(f"{self.name}: the configuration expands to no runs (empty grid)")
        if len(cells) > MAX_CELLS:
            raise ConfigError(f"{self.name}: {len(cells)} cells, more than {MAX_CELLS}")
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

    def run_id(self, cell: str, config: Any, profile: str, seed: int) -> str:
        """Deterministic: the same job, cell, config, seed and code always map to the same
        folder, ``[<cell>-]<profile>-s<seed>-<config hash>-c<code fingerprint>``. The code is
        part of the identity so that runs of two versions of a job live side by side in one
        runs folder (and a version whose job code is the same finds the other's runs)."""
        from mnist_suite.fingerprint import of_job

        digest = config_hash(self.name, cell, dataclasses.asdict(config), seed)
        code = of_job(self)
        parts = (cell, profile, f"s{seed}", digest, code and f"c{code}")
        return "-".join(p for p in parts if p)


JOBS: dict[str, Job] = {}


def register(job: Job) -> Job:
    if job.name in JOBS:
        raise ValueError(f"job {job.name!r} registered twice")
    JOBS[job.name] = job
    return job


def all_jobs() -> dict[str, Job]:
    """Import every job module once and return the registry, sorted by name."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(JOBS.items()))


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
    jobs = all_jobs()
    if name in DEPRECATED_NAMES:
        new = DEPRECATED_NAMES[name]
        log.warning("job %r is now called %r; the old name is deprecated", name, new)
        name = new
    if name not in jobs:
        raise ConfigError(f"unknown job {name!r} (available: {', '.join(jobs)})")
    return jobs[name]
