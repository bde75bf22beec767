"""The work plan: the only place that knows how a batch of runs is numbered.

A plan is the ordered list of work items for a selection of jobs, ``job x cell x seed``. Items
are ordered **seed-major** (every job and cell of seed s0, then of s1, ...), so widening
``--seeds 0-2`` to ``--seeds 0-4`` appends items and keeps every existing index. Anything else
that changes the item list (another job, cell or override) changes the plan's hash
(:func:`plan_hash`); a plan saved with ``mnist-suite plan ... --save plan.json`` is the contract
every worker reads, and a worker given ``--plan-hash`` refuses a plan whose hash differs.

An engine that runs one flavour of image (a Kubernetes Job per image) or only the items still
to do indexes a **subset** of the plan (:func:`subset`): its own index ``k`` is the k-th item of
the subset, in plan order, and the item keeps its plan index for status and logs.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_suite import fingerprint, limits
from mnist_suite.config import config_hash
from mnist_suite.defaults import INDEX_VARIABLE, PROFILES
from mnist_suite.errors import ConfigError, ParameterError

FLAVOURS = ("numpy", "tf")  # the images: without and with TensorFlow
INDEX_VARIABLES = (INDEX_VARIABLE, "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID")
MAX_SEED = 2**31 - 1
_RANGE = re.compile(r"^([0-9]{1,10})(?:-([0-9]{1,10}))?$")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-4"`` -> (0, 1, 2, 3, 4); ``"0,3,7"`` -> (0, 3, 7); ranges and lists mix.

    Seeds are non-negative, unique and kept in the order given; at most
    :data:`~mnist_suite.limits.MAX_SEEDS` of them.
    """
    seeds: dict[int, None] = {}  # ordered and de-duplicated in one pass
    for part in str(text).split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ConfigError(
                f"seeds {text[:60]!r}: expected non-negative integers or ranges like 0-4 or 0,3,7"
            )
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo or hi > MAX_SEED:
            raise ConfigError(f"seeds: range {part.strip()} is empty or too large")
        if hi - lo >= limits.MAX_SEEDS or len(seeds) + (hi - lo) >= 2 * limits.MAX_SEEDS:
            raise ConfigError(f"seeds: at most {limits.MAX_SEEDS} seeds")
        seeds.update(dict.fromkeys(range(lo, hi + 1)))
        if len(seeds) > limits.MAX_SEEDS:
            raise ConfigError(f"seeds: at most {limits.MAX_SEEDS} seeds")
    return tuple(seeds)


@dataclass(frozen=True)
class WorkItem:
    """One run of the plan: ``mnist-suite run JOB --profile P --seed S --set ... --index CELL``."""

    index: int
    job: str
    cell: str  # "" for a single-run job
    cell_index: int
    seed: int
    profile: str
    run_id: str
    flavour: str  # the image that runs it: "numpy" or "tf"
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.job}/{self.cell}" if self.cell else self.job

    def argv(self) -> list[str]:
        """The ``mnist-suite`` arguments that run exactly this item."""
        args = ["run", self.job, "--profile", self.profile, "--seed", str(self.seed)]
        for pair in self.overrides:
            args += ["--set", pair]
        return [*args, "--index", str(self.cell_index)]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "overrides": list(self.overrides)}


def flavour_of(job) -> str:
    return "tf" if job.uses_tensorflow else "numpy"


def run_id(job, cell: str, config: Any, profile: str, seed: int) -> str:
    """The folder of one run of ``job`` (a :class:`~mnist_suite.jobs.Job`). Deterministic: the
    same job, cell, config, seed and code always map to the same folder,
    ``[<cell>-]<profile>-s<seed>-<config hash>-c<code fingerprint>``. The code is part of the
    identity so that runs of two versions of a job live side by side in one runs folder (and a
    version whose job code is the same finds the other's runs)."""
    digest = config_hash(job.name, cell, asdict(config), seed)
    code = fingerprint.of_job(job)
    parts = (cell, profile, f"s{seed}", digest, code and f"c{code}")
    return "-".join(p for p in parts if p)


def build_plan(
    jobs: list[str],
    *,
    profile: str = "full",
    seeds: tuple[int, ...] | None = (0,),
    overrides: tuple[str, ...] = (),
) -> list[WorkItem]:
    """The plan for ``jobs`` (names, in the order given) over ``seeds`` (seed-major).

    ``seeds=None`` runs each job over its own declared seeds (``Job.default_seeds``: five for
    most jobs of the full profile, fewer for the long ones, one for quick): seed s holds the
    jobs that run s, so raising a job's count appends after the items of lower seeds.
    """
    from mnist_suite.jobs import get_job

    if not jobs:
        raise ConfigError("no jobs selected")
    if seeds is not None and not seeds:
        raise ConfigError("no seeds selected")
    bad = next((s for s in seeds or () if not 0 <= s <= MAX_SEED), None)
    if bad is not None:
        raise ConfigError(f"seed {bad}: expected an integer from 0 to {MAX_SEED}")
    if seeds is not None and len(seeds) > limits.MAX_SEEDS:
        raise ConfigError(f"{len(seeds)} seeds: at most {limits.MAX_SEEDS}")
    expanded = []
    for name in dict.fromkeys(jobs):
        job = get_job(name)
        config = job.resolve(profile, list(overrides))
        own = tuple(seeds) if seeds is not None else job.default_seeds(profile)
        expanded.append((job, job.expand(config), set(own)))
    order = seeds if seeds is not None else sorted(set().union(*(e[2] for e in expanded)))
    total = sum(len(cells) * len(own) for _, cells, own in expanded)
    if total > limits.MAX_PLAN_ITEMS:
        raise ConfigError(
            f"the plan would have {total} items, more than {limits.MAX_PLAN_ITEMS}: "
            "fewer seeds, cells or jobs"
        )
    items: list[WorkItem] = []
    for seed in order:
        for job, cells, own in expanded:
            if seed not in own:
                continue
            for cell_index, (label, cell_config) in enumerate(cells):
                items.append(
                    WorkItem(
                        index=len(items),
                        job=job.name,
                        cell=label,
                        cell_index=cell_index,
                        seed=seed,
                        profile=profile,
                        run_id=run_id(job, label, cell_config, profile, seed),
                        flavour=flavour_of(job),
                        overrides=tuple(overrides),
                    )
                )
    return items


def plan_hash(items: list[WorkItem]) -> str:
    """Short hash of the item list: two plans with the same hash number items alike."""
    return config_hash([(i.index, i.job, i.run_id) for i in items])


def index_from_env(env: dict[str, str] | None = None) -> int | None:
    """The work item index an engine gave this process, if any (first variable set wins)."""
    env = os.environ if env is None else env
    for name in INDEX_VARIABLES:
        text = env.get(name, "").strip()
        if text:
            return limits.index_text(text, name)
    return None


def select(items: list[WorkItem], index: int, source: str = "index") -> WorkItem:
    """Item ``index`` of the plan; out of range is a ConfigError naming the valid range."""
    if not 0 <= index < len(items):
        raise ConfigError(f"{source} {index}: the plan has items 0..{len(items) - 1}")
    return items[index]


def parse_items(text: str) -> tuple[int, ...]:
    """``"4,8,15"`` or ``"0-3,8"`` -> plan indexes (sorted, unique)."""
    try:
        return tuple(sorted(set(parse_seeds(text))))
    except ConfigError:
        raise ConfigError(f"items {text!r}: expected plan indexes like 4,8,15 or 0-3,8") from None


def subset(
    items: list[WorkItem], *, flavour: str | None = None, only: tuple[int, ...] | None = None
) -> list[WorkItem]:
    """The items of one image ``flavour`` and/or with plan indexes in ``only``, in plan order."""
    if only is not None:
        unknown = sorted(set(only) - {i.index for i in items})
        if unknown:
            raise ConfigError(f"items {unknown[0]}: the plan has items 0..{len(items) - 1}")
    return [
        i
        for i in items
        if (flavour is None or i.flavour == flavour) and (only is None or i.index in only)
    ]


def check_plan_hash(items: list[WorkItem], expected: str | None) -> None:
    """Refuse to run a plan whose numbering differs from the one the launcher wrote."""
    if expected and plan_hash(items) != expected:
        raise ConfigError(
            f"plan hash {expected}: this plan is {plan_hash(items)} (its items or "
            "their order differ: same arguments and the same suite version on every worker?)"
        )


def run_dir(runs: Path, item: WorkItem) -> Path:
    """Where ``item`` records itself under the runs folder ``runs``."""
    return Path(runs) / item.job / item.run_id


def array_spec(indexes: list[int]) -> str:
    """Slurm's ``--array`` form of sorted indexes, consecutive runs as ranges: ``0-3,8,15``."""
    parts: list[str] = []
    start = prev = None
    for i in [*indexes, None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ",".join(parts)


def plan_document(items: list[WorkItem]) -> dict[str, Any]:
    """The JSON a worker reads back with :func:`load_plan`."""
    return {
        "format": "mnist-suite-plan/1",
        "plan_hash": plan_hash(items),
        "items": [i.to_json() for i in items],
    }


_ITEM_FIELDS = {
    "index": int,
    "job": str,
    "cell": str,
    "cell_index": int,
    "seed": int,
    "profile": str,
    "run_id": str,
    "flavour": str,
    "overrides": list,
}
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")  # one path component, no "..": safe


def _item(raw: Any, number: int, expansions: dict) -> WorkItem:
    """Plan item ``number`` of a saved plan, checked field by field against the registry."""
    from mnist_suite.jobs import find_job

    where = f"plan item {number}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object")
    extra = sorted(set(raw) - set(_ITEM_FIELDS))
    if extra:
        raise ConfigError(f"{where}: unknown field {extra[0][:40]!r}")
    for key, kind in _ITEM_FIELDS.items():
        value = raw.get(key, [] if key == "overrides" else None)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be a JSON {kind.__name__}")
    if raw["index"] != number:
        raise ConfigError(f"{where}: index {raw['index']}; items are numbered 0, 1, 2, ...")
    job = find_job(raw["job"])  # only this job's module is imported
    if job is None:
        raise ConfigError(f"{where}: unknown job {raw['job'][:60]!r}")
    if raw["profile"] not in PROFILES:
        raise ConfigError(f"{where}: profile must be one of {', '.join(PROFILES)}")
    if not 0 <= raw["seed"] <= MAX_SEED:
        raise ConfigError(f"{where}: seed must be an integer from 0 to {MAX_SEED}")
    overrides = raw.get("overrides", [])
    if not all(isinstance(o, str) and "=" in o for o in overrides):
        raise ConfigError(f"{where}: overrides must be key=value strings")
    if not _RUN_ID.fullmatch(raw["run_id"]):
        raise ConfigError(f"{where}: run_id must be one folder name (letters, digits, ._+=-)")
    if raw["flavour"] not in FLAVOURS or raw["flavour"] != flavour_of(job):
        raise ConfigError(f"{where}: flavour must be {flavour_of(job)!r} for job {job.name}")
    key = (job.name, raw["profile"], tuple(overrides))
    if key not in expansions:
        expansions[key] = job.expand(job.resolve(raw["profile"], list(overrides)))
    cells = expansions[key]
    if not 0 <= raw["cell_index"] < len(cells):
        raise ConfigError(f"{where}: cell_index must be from 0 to {len(cells) - 1}")
    label, config = cells[raw["cell_index"]]
    if raw["cell"] != label or raw["run_id"] != run_id(
        job, label, config, raw["profile"], raw["seed"]
    ):
        raise ConfigError(
            f"{where} ({job.name}, seed {raw['seed']}): this suite version expands it "
            "differently; save the plan again"
        )
    return WorkItem(**{**raw, "overrides": tuple(overrides)})


def load_plan(path: Path) -> list[WorkItem]:
    """Read a saved plan, every field checked against the registry; a ConfigError otherwise.

    Nothing written from a plan (a script, a manifest, a run folder) can carry a value that a
    freshly built plan would not: jobs, profiles and flavours are known names, run ids are the
    ones this suite computes, and the item count is capped at
    :data:`~mnist_suite.limits.MAX_PLAN_ITEMS`.
    """
    import json

    limits.regular_file(path, "plan")
    data = limits.read_bytes(path, limits.MAX_PLAN_BYTES, "plan")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != "mnist-suite-plan/1":
        raise ConfigError(f"plan {path}: not a saved plan (expected mnist-suite-plan/1 JSON)")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ConfigError(f"plan {path}: items must be a list")
    if len(raw_items) > limits.MAX_PLAN_ITEMS:
        raise ConfigError(f"plan {path}: more than {limits.MAX_PLAN_ITEMS} items")
    expansions: dict = {}
    try:
        return [_item(raw, n, expansions) for n, raw in enumerate(raw_items)]
    except (ConfigError, ParameterError) as exc:
        raise ConfigError(f"plan {path}: {exc}") from None
