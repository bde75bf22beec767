"""The runs overview and the environment the results came from."""

from __future__ import annotations

from mnist_suite.report.common import (
    Context,
    state_text,
)
from mnist_suite.report.document import Section, Table

# --- runs overview ------------------------------------------------------------------------


# The metric shown for each run in the overview: the first one the run has.
HEADLINES = ("test_accuracy", "test_mse_pixels", "test_mse", "final_train_loss")


def runs_overview(ctx: Context, expected: list[str]) -> Section:
    """Every run with its state (a corrupt or unreadable one with the reason); jobs of
    ``expected`` with no run are named."""
    s = Section(
        "runs",
        "Runs",
        f"Every run directory found under {ctx.runs_dir}, with its seed and state. Tables "
        "below group the runs of each job (or cell of a batch job) by profile and config over "
        "their seeds: the full profile when present, then the group with the most finished "
        "seeds. Figures of one example (images, confusion matrix) use its lowest finished seed.",
    )
    rows = []
    for run in sorted([*ctx.runs, *ctx.unread], key=lambda r: (r.job, r.run_id)):
        headline = next(
            (f"{k}={run.metric(k):.4g}" for k in HEADLINES if run.metric(k) is not None), ""
        )
        rows.append(
            [
                run.job,
                run.cell,
                run.profile,
                run.seed,
                state_text(run),
                headline,
                run.metric("wall_seconds"),
                run.run_id or "(the job folder)",
            ]
        )
    s.tables.append(
        Table(
            "All runs",
            [
                ("job", "text"),
                ("cell", "text"),
                ("profile", "text"),
                ("seed", "text"),
                ("state", "text"),
                ("headline metric", "text"),
                ("wall (s)", "f2"),
                ("run id", "text"),
            ],
            rows,
        )
    )
    seen = {r.job for r in ctx.runs}
    absent = [j for j in expected if j not in seen]
    if not ctx.runs:
        s.notes.append(f"No runs found under {ctx.runs_dir}.")
    elif absent:
        s.notes.append(f"Jobs with no runs: {', '.join(absent)}.")
    if ctx.unread:
        s.notes.append(
            f"{len(ctx.unread)} runs left out of every other section: their records cannot be "
            "read by this user (unreadable) or do not fit their schemas (corrupt); the state "
            "column says why."
        )
    unfinished = [r for r in [*ctx.runs, *ctx.unread] if r.state not in ("done",)]
    if unfinished:
        counts = {}
        for r in unfinished:
            counts[r.state] = counts.get(r.state, 0) + 1
        s.notes.append(
            "Runs not done: "
            + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            + " (shown as such; their figures are not used as results)."
        )
    return s


# --- environment --------------------------------------------------------------------------


def environment_line(ctx: Context, generator: dict) -> str:
    """One sentence: commits and code fingerprints of the runs, machine, load, worker time."""
    commits, prints, loads, walls, starts, ends = set(), set(), [], [], [], []
    for run in ctx.runs:
        if run.state != "done":
            continue
        c, m = run.envelope.get("commit_info", {}), run.envelope.get("machine_info", {})
        if isinstance(c, dict) and c.get("id"):
            commits.add(str(c["id"])[:10] + ("+dirty" if c.get("dirty") else ""))
        if run.fingerprint:
            prints.add(run.fingerprint[:12])
        load = m.get("load_average") if isinstance(m, dict) else None
        if isinstance(load, list) and load and isinstance(load[0], int | float):
            loads.append(float(load[0]))
        if (wall := run.metric("wall_seconds")) is not None:
            walls.append(wall)
        if run.started_at:
            starts.append(run.started_at)
        if run.finished_at:
            ends.append(run.finished_at)
    if not walls:
        return "No finished runs yet."
    parts = [
        f"Figures from {len(walls)} finished runs",
        f"commit{'s' * (len(commits) != 1)} {', '.join(sorted(commits)) or 'unknown'}",
    ]
    if prints:
        parts.append(f"{len(prints)} code fingerprint{'s' * (len(prints) != 1)}")
    parts.append(f"{generator['cpu']} ({generator['cores']} cores)")
    if loads:
        parts.append(f"1-min load at run start {min(loads):.1f}–{max(loads):.1f}")
    parts.append(f"{sum(walls) / 60:.1f} worker-minutes of runs")
    if starts:
        parts.append(f"started {min(starts)[:16]} – {max(starts)[:16]} UTC")
    if span := _span_minutes(starts, ends):
        parts.append(f"first start to last end {span:.1f} min")
    return "; ".join(parts) + "."


def _span_minutes(starts: list[str], ends: list[str]) -> float | None:
    """Minutes from the first run's start to the last run's end (None if unreadable)."""
    from datetime import datetime

    try:
        first = min(datetime.fromisoformat(t) for t in starts)
        last = max(datetime.fromisoformat(t) for t in ends)
    except (TypeError, ValueError):
        return None
    return (last - first).total_seconds() / 60


def environment(ctx: Context, generator: dict) -> Section:
    """CPU, cores, versions, commit and image of every distinct environment, with counts."""
    s = Section(
        "environment",
        "Environment",
        "Where the results were produced, from the envelope every run's config.json and every "
        "benchmark file carries (CPU, cores, versions, git commit, container image).",
    )
    envs: dict[tuple, list[str]] = {}
    for run in ctx.runs:
        m, c, v = (run.envelope.get(k, {}) for k in ("machine_info", "commit_info", "versions"))
        key = (
            str(m.get("cpu", "")),
            m.get("cores"),
            str(m.get("python_version", "")),
            str(v.get("numpy", "")),
            str(v.get("tensorflow-cpu") or v.get("tensorflow") or ""),
            str(v.get("keras", "")),
            str(c.get("id", ""))[:10] + (" (dirty)" if c.get("dirty") else ""),
            str(m.get("image") or ("container" if m.get("in_container") else "host"))
            + (f" ({m['image_id'][:19]})" if m.get("image_id") else ""),
            ", ".join(f"{k}={val}" for k, val in sorted(dict(m.get("threads") or {}).items())),
        )
        envs.setdefault(key, []).append(run.job)
    for bench in ctx.benches:
        m, c = bench.machine_info, bench.commit_info
        cpu = m.get("cpu") if isinstance(m.get("cpu"), dict) else {}
        key = (
            str(cpu.get("brand_raw", "")),
            cpu.get("count"),
            str(m.get("python_version", "")),
            "",
            "",
            "",
            str(c.get("id", ""))[:10] + (" (dirty)" if c.get("dirty") else ""),
            str(m.get("image") or ""),
            "",
        )
        envs.setdefault(key, []).append(f"bench:{bench.path.name}")
    rows = []
    for key, who in envs.items():
        names = sorted(set(who))
        more = " …" if len(names) > 6 else ""
        rows.append([*key, f"{len(who)}: " + ", ".join(names[:6]) + more])
    g = generator
    rows.append(
        [
            g["cpu"],
            g["cores"],
            g["python"],
            g["numpy"],
            "",
            "",
            g["commit"],
            g["image"],
            "",
            "this report (generator)",
        ]
    )
    s.tables.append(
        Table(
            "Machines and versions",
            [
                ("CPU", "text"),
                ("cores", "text"),
                ("Python", "text"),
                ("NumPy", "text"),
                ("TensorFlow", "text"),
                ("Keras", "text"),
                ("git commit", "text"),
                ("image", "text"),
                ("threads", "text"),
                ("results (count: jobs)", "text"),
            ],
            rows,
        )
    )
    if len(envs) > 1:
        s.notes.append(
            "Results come from more than one environment: compare timings within one row only."
        )
    if table := overhead_table(ctx):
        s.tables.append(table)
    return s


# What an item may cost beyond its training and evaluation once its worker is warm (after its
# first item).
OVERHEAD_TARGETS = {"numpy": 1.0, "tf": 3.0}


def overhead_table(ctx: Context) -> Table | None:
    """Per job, the median seconds a finished run's process spent beyond training and evaluation
    (imports, TensorFlow's start, data, the plan, the records): ``item_seconds - train_seconds -
    eval_seconds``, and the median evaluation beside it, for the first item of a process and for
    the later ones (a warm worker's). A run recorded without ``eval_seconds`` counts its
    evaluation as overhead."""
    from statistics import median

    from mnist_suite.jobs import all_jobs

    known = all_jobs()
    # job -> (first items, later items), each a list of (overhead, evaluation or None) seconds
    by_job: dict[str, tuple[list, list]] = {}
    for run in ctx.runs:
        item, train = run.metric("item_seconds"), run.metric("train_seconds")
        number, evaluation = run.metric("process_item"), run.metric("eval_seconds")
        if run.state != "done" or None in (item, train, number) or run.job not in known:
            continue
        first, later = by_job.setdefault(run.job, ([], []))
        overhead = max(0.0, item - train - (evaluation or 0.0))
        (first if number == 1 else later).append((overhead, evaluation))
    if not by_job:
        return None

    def medians(items: list[tuple[float, float | None]]) -> list:
        """Count, median overhead, median evaluation (of the runs that recorded one)."""
        evaluations = [e for _, e in items if e is not None]
        return [
            len(items),
            median(o for o, _ in items) if items else None,
            median(evaluations) if evaluations else None,
        ]

    rows = []
    for job, (first, later) in sorted(by_job.items()):
        flavour = "tf" if known[job].uses_tensorflow else "numpy"
        target = OVERHEAD_TARGETS[flavour]
        beyond = median(o for o, _ in later) if later else None
        met = None if beyond is None else ("met" if beyond <= target else "missed")
        rows.append([job, flavour, *medians(first), *medians(later), f"≤ {target:g}", met or ""])
    return Table(
        "Overhead per item: seconds beyond training and evaluation",
        [
            ("job", "text"),
            ("image", "text"),
            ("first items", "text"),
            ("first: median (s)", "f2"),
            ("first: evaluation (s)", "f2"),
            ("later items", "text"),
            ("later: median (s)", "f2"),
            ("later: evaluation (s)", "f2"),
            ("target (s)", "text"),
            ("later vs target", "text"),
        ],
        rows,
        note="An item's process time (from its worker taking it, or its process starting, to "
        "its record) less its training clock and its evaluation: imports, TensorFlow's start, "
        "reading MNIST, the plan and writing the records. Evaluation (dev, test, the training "
        "set's figures, an autoencoder's PCA reference) is its own median beside it; a run "
        "recorded without it counts it as overhead. A worker's first item pays the imports "
        "(a TensorFlow job's first traces of a model's graphs fall in its training and "
        "evaluation clocks); later items run warm. A container's own start is not counted.",
    )
