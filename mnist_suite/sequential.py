"""``compare BASE NEW --jobs … --until-decided``: seeds added until every row is decided.

A row is decided when it reads better, worse, equivalent or identical
(:data:`mnist_suite.verdicts.DECIDED`); inconclusive and too-few-seeds rows are not. Seeds are
added at looks fixed before any run (:func:`schedule`): the seeds given, then 1.5 times as many
each look (rounded up) up to ``--max-seeds`` (12 by default: 4, 6, 9, 12). Each look runs the
new seeds of the jobs still undecided, both revisions alternately (:func:`mnist_suite.ab
.run_alternately`: runs are keyed by code, so no run is made twice), and judges the whole table
again, each job at the seeds it reached: decided rows stay in their families, so no family's
intervals narrow by losing rows. A row decided at a look is frozen there, with the seeds it
needed.

Why every look judges at ``1 − (1 − confidence)/K`` for K looks (:func:`look_confidence`):
looking again until something is found raises the chance of a false verdict with every look.
Spending the error rate evenly over a schedule fixed in advance bounds it by the union: at
most ``1 − confidence`` of a false better/worse over all looks (Holm within each look), and half
that of a false equivalent (each interval's one tail), whenever the comparison stops. Group
sequential boundaries (Pocock, O'Brien–Fleming) spend less, but their exact values for t
statistics of unknown variance at n ≤ 12 are approximations; with four looks Bonferroni costs
little (each at 98.75% instead of 95%). Anytime-valid confidence sequences need no schedule,
but at n ≤ 12 they are far wider than a t interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mnist_suite import ab, limits
from mnist_suite.compare import QUALITY, CompareOptions, Side, compare, judge, side_of_runs
from mnist_suite.errors import ConfigError
from mnist_suite.verdicts import DECIDED, FEW, INCONCLUSIVE

DEFAULT_MAX_SEEDS = 12
GROWTH = 1.5  # each look's seeds over the last one's
UNDECIDED = (INCONCLUSIVE, FEW)  # rows more seeds may decide
SHOWN = 3  # undecided rows named in a progress line


def schedule(first: int, last: int) -> list[int]:
    """The seeds of each look: ``first``, then ``ceil(1.5 · n)`` of the one before, at most
    ``last`` (which ends it). ConfigError (one line) when ``last`` is below ``first``."""
    if not 1 <= first <= last <= limits.MAX_SEEDS:
        raise ConfigError(
            f"--max-seeds {last}: expected from the {first} seeds of --seeds to {limits.MAX_SEEDS}"
        )
    sizes = [first]
    while sizes[-1] < last:
        sizes.append(min(last, math.ceil(GROWTH * sizes[-1])))
    return sizes


def look_confidence(confidence: float, looks: int) -> float:
    """The confidence each of ``looks`` looks judges at: 1 − (1 − confidence)/looks."""
    return 1 - (1 - confidence) / looks


def seeds_for(given: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The first ``n`` seeds: those ``given``, then the integers after the largest of them."""
    more = range(max(given) + 1, max(given) + 1 + max(0, n - len(given)))
    return (given + tuple(more))[:n]


def _key(row: dict) -> tuple:
    return row["kind"], row["job"], row["cell"], row["profile"], row["metric"]


def freeze(frozen: dict[tuple, dict], rows: list[dict], seeds: dict[tuple, int]) -> list[dict]:
    """This look's ``rows`` with every row decided at an earlier look as it was then; a row
    decided now joins ``frozen``. Each decided or undecided row says the seeds it has
    (``seeds``: per job and cell, the seeds its runs reached)."""
    out = []
    for row in rows:
        key = _key(row)
        if key in frozen:
            out.append(frozen[key])
            continue
        ran = seeds.get((row["job"], row["cell"]))
        row = row | {"seeds": ran if row["verdict"] in (*DECIDED, *UNDECIDED) else None}
        if row["verdict"] in DECIDED:
            frozen[key] = row
        out.append(row)
    return out


def judge_look(
    base: Side,
    new: Side,
    rules: dict,
    confidence: float,
    frozen: dict[tuple, dict],
    reached: dict[tuple[str, str], int],
) -> list[dict]:
    """One look's table: compare's rows at the look's ``confidence``, those decided before as
    they were then (:func:`freeze`)."""
    return freeze(frozen, compare(base, new, rules, confidence), reached)


def undecided(rows: list[dict], metrics: tuple[str, ...] = ()) -> list[dict]:
    """The run rows more seeds may decide and the loop pursues: of ``metrics`` when given
    (``--fail-metric``), else of the accuracy and loss family. A clock's row is judged at each
    look like any other but pursued only when named: at a few seeds it often needs tens more
    (the load moves it), and a question about accuracy must not wait for it."""
    return [
        r for r in rows
        if r["kind"] == "run" and r["verdict"] in UNDECIDED
        and (r["metric"] in metrics if metrics else r["family"] == QUALITY)
    ]  # fmt: skip


def progress(look: int, looks: int, seeds: int, left: list[dict]) -> str:
    """One look's line: which look, its seeds, and the rows still undecided (a few named)."""
    named = [f"{r['job']}{'/' + r['cell'] if r['cell'] else ''} {r['metric']}" for r in left]
    shown = ", ".join(named[:SHOWN]) + (", …" if len(named) > SHOWN else "")
    count = f"{len(left)} row{'s' * (len(left) != 1)} still undecided"
    return f"look {look} of {looks}, {seeds} seeds: {count}" + (f" ({shown})" if left else "")


def _item_group(item: dict) -> tuple[str, str]:
    return item["job"], item.get("cell") or ""


@dataclass
class Decided:
    """The outcome: the two sides at the seeds each job reached, the rows (each with
    ``seeds``), the schedule, how many looks ran, and the confidence each look judged at."""

    base: Side
    new: Side
    rows: list[dict]
    sizes: list[int]
    looks: int
    confidence: float

    def preface(self) -> tuple[str, ...]:
        sizes = ", ".join(map(str, self.sizes))
        return (
            f"seeds until decided: looks at {sizes} seeds (K = {len(self.sizes)}), each judged at "
            f"{100 * self.confidence:.4g}% (Bonferroni over the looks); {self.looks} of "
            f"{len(self.sizes)} looks ran",
        )

    def extra(self) -> dict:
        return {
            "until_decided": {
                "looks": self.sizes,
                "K": len(self.sizes),
                "looks_run": self.looks,
                "confidence_per_look": self.confidence,
                "method": "Bonferroni over a fixed look schedule: each look at "
                "1 - (1 - confidence) / K",
            }
        }

    def judge(self, options: CompareOptions) -> tuple[str, list[str]]:
        """``compare``'s table of these rows and the lines that fail it
        (:func:`mnist_suite.compare.judge`), at the confidence each look judged at."""
        at_look = replace(options, confidence=self.confidence)
        return judge(self.base, self.new, at_look, self.rows, self.preface(), self.extra())


def check(args) -> None:
    """ConfigError (one line) for ``--max-seeds`` without ``--until-decided``."""
    if args.max_seeds is not None and not args.until_decided:
        raise ConfigError("--max-seeds sets --until-decided's last look: give both")


def until_decided(args, options: CompareOptions, say) -> Decided:
    """Both revisions of ``args`` compared look by look (module docstring) until every run row
    is decided or the schedule ends; ``say`` gets one progress line per look."""
    from mnist_suite.plan import parse_seeds

    given = parse_seeds(args.seeds)
    last = DEFAULT_MAX_SEEDS if args.max_seeds is None else args.max_seeds
    sizes = schedule(len(given), last)
    confidence = look_confidence(options.confidence, len(sizes))
    rules = options.rules()
    frozen: dict[tuple, dict] = {}
    reached: dict[tuple[str, str], int] = {}  # per job and cell: the seeds its runs reached
    with ab.revisions(args, say) as (pair, selection, cache):
        pursued: set[tuple[str, str]] | None = None  # None: every job and cell
        for look, n in enumerate(sizes, 1):
            chosen = seeds_for(given, n)
            at_look = replace(selection, seeds=chosen)
            if look > 1:
                ab.replan(pair, at_look, cache, say)
            planned = [side.items for side in pair]
            for side, items in zip(pair, planned, strict=True):
                side.items = [i for i in items if pursued is None or _item_group(i) in pursued]
            ab.run_alternately(pair, at_look, say)
            for side in pair:
                reached |= {_item_group(i): n for i in side.items}
            # Read every job at the seeds it reached: the decided ones as they were decided.
            for side, items in zip(pair, planned, strict=True):
                side.items = [i for i in items if i["seed"] in chosen[: reached[_item_group(i)]]]
            base, new = (side_of_runs(s.revision.label, ab.records(s)) for s in pair)
            rows = judge_look(base, new, rules, confidence, frozen, reached)
            left = undecided(rows, tuple(options.fail_metric))
            say(progress(look, len(sizes), n, left))
            pursued = {(r["job"], r["cell"]) for r in left}
            if not pursued:
                break
    return Decided(base, new, rows, sizes, look, confidence)
