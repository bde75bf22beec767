"""A batch: the plan items one command addresses, what to do with each, and how the batch ends.

Every command that runs or shows items comes here: ``run`` (:func:`run_items`), the local and
container pools (:func:`decide_item` before starting a process), ``plan --status``
(:func:`item_states`) and the engines' writers (:func:`select`). One decision,
:func:`mnist_suite.runs.decide`, says whether a recorded run is kept: it reads each run
folder once per decision, under the run's claim when the run is about to be written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnist_suite.defaults import PROFILES
from mnist_suite.errors import (
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RESULTS,
    EXIT_SIGNALS,
    EXIT_USAGE,
    ConfigError,
)
from mnist_suite.files import writable_folder
from mnist_suite.options import option
from mnist_suite.plan import (
    FLAVOURS,
    INDEX_VARIABLES,
    WorkItem,
    build_plan,
    check_plan_hash,
    index_from_env,
    load_plan,
    parse_items,
    parse_seeds,
    run_dir,
    run_id,
    subset,
)
from mnist_suite.runs import Decision, Outcome, decide, execute, load_run
from mnist_suite.text import printable

# A pending item is one a re-submission should run again: not finished, not being run now, or
# finished by other code (outdated: mnist_suite.fingerprint).
PENDING_STATES = ("failed", "interrupted", "missing", "corrupt", "outdated")


@dataclass(frozen=True)
class Selection:
    """The plan arguments of a command: jobs, profile, seeds and overrides, or a saved plan,
    narrowed to one image ``flavour`` and/or the plan indexes ``items``."""

    jobs: tuple[str, ...] = option(
        (), "job names (none: every job; `run` needs one or --plan)", flag="jobs", nargs="*",
        metavar="JOB",
    )  # fmt: skip
    profile: str = option("full", "the profile: quick or full", choices=PROFILES)
    seed: int | None = option(None, "one seed (default 0)", type=int, exclusive="seeds")
    seeds: str | None = option(
        None,
        "seeds: 0-4 or 0,3,7 (one run each); 'default' = each job's own count (full profile: "
        "5, fewer for long jobs; quick: 1)",
        exclusive="seeds",
    )
    overrides: tuple[str, ...] = option(
        (), "override a config field (repeatable)", flag="--set", metavar="KEY=VALUE"
    )
    plan: Path | None = option(None, "a plan saved by `plan --save`", type=Path)
    flavour: str | None = option(None, "only the items of this image", choices=FLAVOURS)
    items: str | None = option(None, "only these plan indexes, e.g. 4,8,15", metavar="LIST")
    plan_hash: str | None = option(
        None, "refuse a plan whose hash differs", flag=("--plan-hash", "--plan-fingerprint")
    )
    all_by_default: bool = False  # no job named: every job (else an error)

    def seed_list(self) -> tuple[int, ...] | None:
        """The seeds asked for; None for ``default`` (each job's declared seeds)."""
        if self.seeds == "default":
            return None
        if self.seeds is not None:
            return parse_seeds(self.seeds)
        return (0 if self.seed is None else self.seed,)

    def run_arguments(self) -> list[str]:
        """The ``run`` arguments that rebuild this plan on a worker (the saved plan, or the
        jobs, profile, seeds and overrides)."""
        if self.plan:
            return ["--plan", str(self.plan)]
        from mnist_suite.jobs import all_jobs

        seeds = self.seed_list()
        listed = "default" if seeds is None else ",".join(map(str, seeds))
        out = [*(self.jobs or all_jobs()), "--profile", self.profile, "--seeds", listed]
        for pair in self.overrides:
            out += ["--set", pair]
        return out


def select(selection: Selection) -> tuple[list[WorkItem], list[WorkItem], str]:
    """(the whole plan, the items the selection addresses, "plan" or "selection").

    The plan comes from the saved plan or is built from the jobs, profile, seeds and overrides;
    the flavour and the plan indexes narrow it to the subset an engine indexes.
    """
    from mnist_suite.jobs import all_jobs

    s = selection
    if s.plan:
        if s.jobs or s.overrides or s.seeds or s.seed is not None:
            raise ConfigError("plan: a saved plan fixes jobs, seeds and overrides; leave them out")
        items = load_plan(s.plan)
        if not items:
            raise ConfigError(f"plan {s.plan}: the plan has no items")
    else:
        if not s.jobs and not s.all_by_default:
            raise ConfigError("name at least one job (mnist-suite list shows them) or a saved plan")
        items = build_plan(
            list(s.jobs or all_jobs()),
            profile=s.profile,
            seeds=s.seed_list(),
            overrides=tuple(s.overrides),
        )
    check_plan_hash(items, s.plan_hash)
    only = parse_items(s.items) if s.items else None
    chosen = subset(items, flavour=s.flavour, only=only)
    what = "plan" if s.flavour is None and only is None else "selection"
    return items, chosen, what


def pick(chosen: list[WorkItem], what: str, index: int | None) -> list[WorkItem]:
    """Item ``index`` of ``chosen`` (``index`` None: the engine's variable, else every item)."""
    source = "index"
    if index is None:
        index = index_from_env()
        if index is None:
            return chosen
        source = "$" + next(v for v in INDEX_VARIABLES if os.environ.get(v, "").strip())
    if not chosen:
        raise ConfigError(f"{source} {index}: the {what} has no items")
    if not 0 <= index < len(chosen):
        raise ConfigError(f"{source} {index}: the {what} has items 0..{len(chosen) - 1}")
    return [chosen[index]]


def resolve(item: WorkItem) -> tuple:
    """(job, cell label, cell config) of a work item, checked against this suite's expansion."""
    from mnist_suite.jobs import get_job

    job = get_job(item.job)
    cells = job.expand(job.resolve(item.profile, list(item.overrides)))
    if item.cell_index < len(cells):
        label, config = cells[item.cell_index]
        if run_id(job, label, config, item.profile, item.seed) == item.run_id:
            return job, label, config
    raise ConfigError(
        f"plan item {item.index} ({item.name}, seed {item.seed}): this suite version expands "
        "it differently; save the plan again"
    )


def decide_item(
    runs: Path, item: WorkItem, *, force: bool = False, reuse_outdated: bool = False
) -> Decision:
    """What ``run`` would do with ``item`` now: its run folder read once, then decided."""
    from mnist_suite.fingerprint import for_job_name

    path = run_dir(runs, item)
    run = load_run(path) if path.is_dir() else None
    return decide(run, for_job_name(item.job), force=force, reuse_outdated=reuse_outdated)


def item_states(items: list[WorkItem], runs: Path) -> list[str]:
    """Each item's state in the runs folder (``missing`` when it has no run directory,
    ``outdated`` when it finished at another code fingerprint than this source's)."""
    from mnist_suite.fingerprint import for_job_name

    states = []
    for item in items:
        path = run_dir(runs, item)
        shown = load_run(path).shown_state(for_job_name(item.job)) if path.is_dir() else "missing"
        states.append(shown)
    return states


def run(
    selection: Selection,
    runs: Path,
    *,
    index: int | None = None,
    data_options: dict | None = None,
    force: bool = False,
    reuse_outdated: bool = False,
    on_outcome: Callable[[WorkItem, Outcome], None] = lambda item, outcome: None,
) -> int:
    """The ``run`` command: the items of ``selection`` (or its item ``index``) one after
    another into ``runs``, checked writable first; the exit code of the batch."""
    _, chosen, what = select(selection)
    chosen = pick(chosen, what, index)
    writable_folder(runs, "runs")
    return run_items(
        chosen,
        runs,
        data_options=data_options,
        force=force,
        reuse_outdated=reuse_outdated,
        on_outcome=on_outcome,
    )


def run_items(
    items: list[WorkItem],
    runs: Path,
    *,
    data_options: dict | None = None,
    force: bool = False,
    reuse_outdated: bool = False,
    on_outcome: Callable[[WorkItem, Outcome], None] = lambda item, outcome: None,
) -> int:
    """Run work items one after another in this process; the exit code of the batch.

    Every item is resolved (and its config validated) before any runs; an item that will
    train is checked (TensorFlow, the data) before its folder is touched.
    ``on_outcome`` gets each item's outcome as it ends (the command line prints it).
    """
    for item in items:
        if item.seed < 0:
            raise ConfigError(f"seed {item.seed}: expected an integer >= 0")
    resolved = [(item, *resolve(item)) for item in items]
    codes = []
    for item, job, label, cell_config in resolved:
        outcome = execute(
            job,
            label,
            cell_config,
            seed=item.seed,
            profile=item.profile,
            out=runs,
            run_id=item.run_id,
            data_options=data_options,
            force=force,
            reuse_outdated=reuse_outdated,
            check_first=True,
        )
        on_outcome(item, outcome)
        codes.append(item_exit_code(outcome, alone=len(items) == 1))
    return max(codes, default=EXIT_OK)


def outcome_lines(item: WorkItem, outcome: Outcome) -> tuple[str, str | None]:
    """What ``run`` says of one item: its line for stdout, and why it did not succeed (for
    stderr), if it did not. Messages quote claim files and records another host or user
    wrote: control characters are escaped, each stays one line."""
    shown, note = outcome.state, ""
    name, message = printable(item.name), printable(outcome.message)
    held = outcome.skipped and outcome.state == "running"  # another attempt owns it
    if held:
        note = f" ({message}; not run here)"
    elif outcome.skipped:
        shown, note = "skipped", f" ({outcome.state}, {message}, skipped)"
    line = f"{shown:<11} {printable(str(outcome.path))}{note}"
    if held:
        return line, f"error: {name}: {message}; not run here"
    if outcome.state in ("failed", "unreadable"):
        return line, f"error: {name}: {message}"
    if outcome.state == "diverged":
        return line, f"warning: {name}: diverged: {message}"
    return line, None


def item_exit_code(outcome: Outcome, alone: bool) -> int:
    """The exit code one item's outcome gives: an item another attempt holds did not succeed
    here; divergence is a result in a batch, a failure of a single run."""
    if outcome.skipped and outcome.state == "running":
        return EXIT_FAILED
    if outcome.state in ("failed", "unreadable"):  # unreadable: kept, but not a result here
        return EXIT_FAILED
    if outcome.state == "diverged":
        return EXIT_DIVERGED if alone else EXIT_OK
    return EXIT_OK


def recorded_exit_code(state: str) -> int:
    """The exit code of an item skipped because its run is recorded ``state`` (an unreadable
    run is kept, but gives this batch no result)."""
    if state == "unreadable":
        return EXIT_FAILED
    return EXIT_DIVERGED if state == "diverged" else EXIT_OK


def batch_exit_code(codes) -> int:
    """128 + signal if stopped (130 SIGINT, 143 SIGTERM, 129 SIGHUP), else 2 for bad usage,
    1 for any other failure; divergence is a result."""
    bad = {c for c in codes if c not in EXIT_RESULTS}
    for code in (*EXIT_SIGNALS, EXIT_USAGE):
        if code in bad:
            return code
    return EXIT_FAILED if bad else EXIT_OK


def plan_listing(
    selection: Selection, runs: Path, status: bool, pending: bool, as_json: bool
) -> str:
    """What ``plan`` prints: the selected items (with their states in ``runs`` if ``status``),
    or with ``pending`` the ones to run again; a table, or JSON with ``as_json``."""
    from mnist_suite.files import dumps

    items, chosen, _ = select(selection)
    states = item_states(chosen, runs) if status or pending else None
    if pending:
        doc = pending_document(items, chosen, states)
        return dumps(doc) if as_json else pending_text(doc, len(chosen))
    if as_json:
        return dumps(plan_json(items, chosen, states))
    return plan_text(items, chosen, states)


def save_plan(items: list[WorkItem], path: Path) -> str:
    """Write the whole plan ``items`` to ``path`` (a plan document); say so."""
    from mnist_suite.files import atomic_write_json
    from mnist_suite.plan import plan_document, plan_hash

    atomic_write_json(path, plan_document(items))
    return f"plan {plan_hash(items)} ({len(items)} items) saved to {path}"


def pending_document(items: list[WorkItem], chosen: list[WorkItem], states: list[str]) -> dict:
    """The items of ``chosen`` to run again, in each engine's form (``plan --pending``)."""
    from mnist_suite.plan import array_spec, plan_hash

    pending = [i.index for i, s in zip(chosen, states, strict=True) if s in PENDING_STATES]
    by_flavour = {
        f: [i.index for i in chosen if i.index in pending and i.flavour == f]
        for f in sorted({i.flavour for i in chosen})
    }
    return {
        "plan_hash": plan_hash(items),
        "pending": pending,
        "slurm": f"--array={array_spec(pending)}" if pending else "",
        "kubernetes": {
            f: {"items": idx, "completions": len(idx)} for f, idx in by_flavour.items() if idx
        },
    }


def estimate(profile: str, seeds: tuple[int, ...] | None, workers: int) -> tuple[int, float]:
    """(items, minutes on ``workers`` workers) of every job's plan: what a bare ``train`` shows."""
    from mnist_suite.jobs import all_jobs, get_job

    items = build_plan(list(all_jobs()), profile=profile, seeds=seeds)
    seconds = sum(get_job(i.job).expected_seconds(i.cell, i.profile) for i in items)
    return len(items), seconds / 60 / workers


def estimate_text(profile: str, seeds: tuple[int, ...] | None, workers: int) -> str:
    """Every job's plan, its size and about how long it takes: what a bare ``train`` says."""
    n, minutes = estimate(profile, seeds, workers)
    return (
        f"every job, profile {profile}: {n} items, about {minutes:.0f} min on "
        f"{workers} worker{'s' * (workers != 1)}"
    )


def pending_text(doc: dict, n_chosen: int) -> str:
    """:func:`pending_document` as the lines ``plan --pending`` prints."""
    from mnist_suite.plan import array_spec

    pending = doc["pending"]
    if not pending:
        return f"nothing pending: all {n_chosen} items are done, diverged or running"
    lines = [
        f"pending: {len(pending)} of {n_chosen} items",
        f"slurm:       sbatch {doc['slurm']} job.sbatch",
        f"kubernetes:  {pending}  (mnist-suite k8s ... --items {array_spec(pending)})",
    ]
    for f, entry in doc["kubernetes"].items():
        lines.append(f"  {f} Job: completions {entry['completions']}, items {entry['items']}")
    return "\n".join(lines)


def plan_json(items: list[WorkItem], chosen: list[WorkItem], states: list[str] | None) -> dict:
    """The plan's hash and the chosen items (with their states, if read): ``plan --json``."""
    from mnist_suite.plan import plan_hash

    rows = [i.to_json() for i in chosen]
    if states is not None:
        rows = [{**r, "state": s} for r, s in zip(rows, states, strict=True)]
    return {"plan_hash": plan_hash(items), "items": rows}


def plan_text(items: list[WorkItem], chosen: list[WorkItem], states: list[str] | None) -> str:
    """The chosen items as a table (with their states, if read) and a summary line."""
    from mnist_suite.plan import plan_hash

    header = ["index", "job", "cell", "seed", "run id", "flavour"]
    rows = [[str(i.index), i.job, i.cell or "-", str(i.seed), i.run_id, i.flavour] for i in chosen]
    if states is not None:
        header.insert(1, "state")
        for row, state in zip(rows, states, strict=True):
            row.insert(1, state)
    # Cells and run ids come from saved plans and runs folders: no escape reaches a terminal.
    rows = [[printable(v) for v in row] for row in rows]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    summary = f"{len(chosen)} items, plan {plan_hash(items)}"
    if states is not None:
        counts = {s: states.count(s) for s in dict.fromkeys(states)}
        summary += ": " + ", ".join(f"{n} {s}" for s, n in counts.items())
    return "\n".join([*lines, summary])
