"""`mnist-suite` / `python -m mnist_suite`: one entry point for every job, here or in a container.

Exit codes: 0 success; 1 a run failed; 2 bad usage, config or data; 3 a single run diverged;
130, 143, 129 interrupted (SIGINT, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mnist_suite.defaults import BENCH_RESULTS, PROFILES, REPORT_FOLDER, RUNS_VARIABLE, runs_folder
from mnist_suite.errors import SuiteError
from mnist_suite.plan import FLAVOURS
from mnist_suite.text import printable

EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_SIGNALS = (EXIT_INTERRUPTED, 143, 129)  # a pool stopped by SIGINT, SIGTERM, SIGHUP

EPILOG = """\
exit codes:
  0    success (in a batch, a diverged run is a result)
  1    a run failed, or compare --fail-on found a regression
  2    bad usage, configuration, path or data (one line on stderr, nothing run)
  3    a single run diverged (non-finite loss)
  130  interrupted by Ctrl-C (143: SIGTERM, 129: SIGHUP to a train pool); the running
       items end 'interrupted'

environment:
  MNIST_SUITE_RUNS        runs folder when --runs is not given (default ./runs)
  MNIST_SUITE_DATA        an mnist.npz or IDX folder to use instead of the cache
  MNIST_SUITE_CACHE       where verified MNIST is cached (default: the user cache folder)
  MNIST_SUITE_OFFLINE     1: never touch the network
  MNIST_SUITE_INDEX       the plan item `run` executes (also JOB_COMPLETION_INDEX,
                          SLURM_ARRAY_TASK_ID; --index wins)
  MNIST_SUITE_CLAIM_WAIT  seconds a second attempt waits for a run another process holds
                          (0 to 3600)

docs: README.md and docs/ in the source tree.
"""


def _path(text: str) -> Path:
    """A path argument; a NUL character (possible only from a program, never a shell) is refused."""
    if "\0" in text:
        raise argparse.ArgumentTypeError("a path cannot contain a NUL character")
    return Path(text)


def _optional_int(text: str) -> int | None:
    """An integer argument, or ``none``."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer or 'none'") from None


def _data_options(args: argparse.Namespace) -> dict:
    return {"path": args.data, "offline": args.offline or None}


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=_path,
        default=None,
        help="an mnist.npz or a folder of IDX files (default: $MNIST_SUITE_DATA)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="never touch the network (also $MNIST_SUITE_OFFLINE=1)",
    )


def cmd_data(args: argparse.Namespace) -> int:
    from mnist_suite.data import load_mnist

    mnist = load_mnist(**_data_options(args))
    print(f"MNIST verified (sha256 of all four arrays): source={mnist.source} at {mnist.location}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from mnist_suite.jobs import all_jobs

    jobs = all_jobs()
    width = max(map(len, jobs), default=0)
    for name, job in jobs.items():
        print(f"{name:<{width}}  {job.summary}")
    return 0


def cmd_cells(args: argparse.Namespace) -> int:
    from mnist_suite.jobs import get_job

    job = get_job(args.job)
    for i, (label, _) in enumerate(job.expand(job.resolve(args.profile, args.set))):
        print(f"{i}\t{printable(label or job.name)}")
    return 0


def _selection(args: argparse.Namespace) -> tuple[list, list, str]:
    """(the whole plan, the items this command addresses, the name of what indexes them).

    The plan comes from ``--plan FILE`` or is built from the jobs, profile, seeds and overrides;
    ``--flavour`` and ``--items`` narrow it to the subset an engine indexes (see mnist_suite.plan).
    """
    from mnist_suite.jobs import all_jobs
    from mnist_suite.plan import build_plan, check_fingerprint, load_plan, parse_items, subset

    if getattr(args, "plan", None):
        if args.jobs or args.set or args.seeds or args.seed is not None:
            raise SuiteError("--plan: the saved plan fixes jobs, seeds and --set; leave them out")
        items = load_plan(args.plan)
        if not items:
            raise SuiteError(f"--plan {args.plan}: the plan has no items")
    else:
        if not args.jobs and not args.all_jobs_by_default:
            raise SuiteError("name at least one job (mnist-suite list shows them) or --plan FILE")
        items = build_plan(
            args.jobs or list(all_jobs()),
            profile=args.profile,
            seeds=_seeds(args),
            overrides=args.set,
        )
    check_fingerprint(items, args.plan_fingerprint)
    only = parse_items(args.items) if args.items else None
    chosen = subset(items, flavour=args.flavour, only=only)
    what = "plan" if args.flavour is None and only is None else "selection"
    return items, chosen, what


def _seeds(args: argparse.Namespace) -> tuple[int, ...] | None:
    """The seeds asked for; None for ``--seeds default`` (each job's declared seeds)."""
    from mnist_suite.plan import parse_seeds

    if args.seeds == "default":
        return None
    if args.seeds is not None:
        return parse_seeds(args.seeds)
    return (0 if args.seed is None else args.seed,)


def _index(args: argparse.Namespace) -> tuple[int | None, str]:
    """The item index from ``--index`` or, failing that, from an engine's variable."""
    from mnist_suite.plan import INDEX_VARIABLES, index_from_env

    if args.index is not None:
        return args.index, "--index"
    index = index_from_env()
    if index is None:
        return None, ""
    source = next(v for v in INDEX_VARIABLES if os.environ.get(v, "").strip())
    return index, f"${source}"


def _resolve(item) -> tuple:
    """(job, cell label, cell config) of a work item, checked against this suite's expansion."""
    from mnist_suite.jobs import get_job

    job = get_job(item.job)
    cells = job.expand(job.resolve(item.profile, list(item.overrides)))
    if item.cell_index < len(cells):
        label, config = cells[item.cell_index]
        if job.run_id(label, config, item.profile, item.seed) == item.run_id:
            return job, label, config
    raise SuiteError(
        f"plan item {item.index} ({item.name}, seed {item.seed}): this suite version expands "
        "it differently; save the plan again"
    )


def _preflight(items: list, args: argparse.Namespace) -> None:
    """Check what runs need before any run folder is created or cleared (``--force`` included).

    Configs were resolved (and validated) by the caller; here: seeds, the runs folder, and the
    data, loaded and verified once if any item will train (the runs reuse that load).
    """
    from mnist_suite.paths import writable_folder
    from mnist_suite.plan import item_states
    from mnist_suite.runs import FINAL_STATES

    for item in items:
        if item.seed < 0:
            raise SuiteError(f"seed {item.seed}: expected an integer >= 0")
    writable_folder(args.runs, "--runs")
    states = item_states(items, args.runs)
    # An unreadable run is left alone (never cleared), so it needs no data.
    settled = (*FINAL_STATES, "unreadable")
    to_run = [i for i, s in zip(items, states, strict=True) if args.force or s not in settled]
    if to_run:
        from mnist_suite.data import load_mnist
        from mnist_suite.jobs import require_tensorflow

        require_tensorflow({i.job for i in to_run})

        load_mnist(**_data_options(args))


def run_items(items: list, args: argparse.Namespace) -> int:
    """Run work items one after another in this process; the exit code of the batch."""
    from mnist_suite.runs import execute

    resolved = [(item, *_resolve(item)) for item in items]  # all checked before any runs
    _preflight(items, args)
    codes = []
    for item, job, label, cell_config in resolved:
        outcome = execute(
            job,
            label,
            cell_config,
            seed=item.seed,
            profile=item.profile,
            out=args.runs,
            run_id=item.run_id,
            data_options=_data_options(args),
            force=args.force,
            reuse_stale=args.reuse_stale,
        )
        shown, note = outcome.state, ""
        # Messages quote claim files and records another host or user wrote: one line each.
        name, message = printable(item.name), printable(outcome.message)
        if outcome.skipped and outcome.state == "running":
            note = f" ({message}; not run here)"
        elif outcome.skipped:
            shown, note = "skipped", f" ({outcome.state}, {message}, skipped)"
        print(f"{shown:<11} {printable(str(outcome.path))}{note}", flush=True)
        if outcome.skipped and outcome.state == "running":
            # Another attempt owns it: this one did not run it, so it did not succeed.
            print(f"error: {name}: {message}; not run here", file=sys.stderr)
            codes.append(EXIT_FAILED)
        elif outcome.state in ("failed", "unreadable"):
            print(f"error: {name}: {message}", file=sys.stderr)
            codes.append(EXIT_FAILED)
        elif outcome.state == "diverged":
            print(f"warning: {name}: diverged: {message}", file=sys.stderr)
            # In a batch (sweep, grid) divergence is a result; alone, the run did not succeed.
            codes.append(EXIT_DIVERGED if len(items) == 1 else 0)
    return max(codes, default=0)


def cmd_run(args: argparse.Namespace) -> int:
    from mnist_suite.plan import select

    _, chosen, what = _selection(args)
    index, source = _index(args)
    if index is not None:
        if not chosen:
            raise SuiteError(f"{source} {index}: the {what} has no items")
        if not 0 <= index < len(chosen):
            raise SuiteError(f"{source} {index}: the {what} has items 0..{len(chosen) - 1}")
        chosen = [select(chosen, index, source)]
    return run_items(chosen, args)


def cmd_plan(args: argparse.Namespace) -> int:
    from mnist_suite.files import atomic_write_json, dumps
    from mnist_suite.plan import (
        PENDING_STATES,
        array_spec,
        fingerprint,
        item_states,
        plan_document,
    )

    items, chosen, _ = _selection(args)
    if args.save:
        from mnist_suite.paths import writable_file

        writable_file(args.save, "--save", {"--plan": getattr(args, "plan", None)})
        atomic_write_json(args.save, plan_document(items))
        print(f"plan {fingerprint(items)} ({len(items)} items) saved to {args.save}")
        return 0
    states = item_states(chosen, args.runs) if args.status or args.pending else None
    if args.pending:
        pending = [i.index for i, s in zip(chosen, states, strict=True) if s in PENDING_STATES]
        by_flavour = {
            f: [i.index for i in chosen if i.index in pending and i.flavour == f]
            for f in sorted({i.flavour for i in chosen})
        }
        doc = {
            "fingerprint": fingerprint(items),
            "pending": pending,
            "slurm": f"--array={array_spec(pending)}" if pending else "",
            "kubernetes": {
                f: {"items": idx, "completions": len(idx)} for f, idx in by_flavour.items() if idx
            },
        }
        if args.json:
            print(dumps(doc))
        elif not pending:
            print(f"nothing pending: all {len(chosen)} items are done, diverged or running")
        else:
            print(f"pending: {len(pending)} of {len(chosen)} items")
            print(f"slurm:       sbatch {doc['slurm']} job.sbatch")
            print(f"kubernetes:  {pending}  (mnist-suite k8s ... --items {array_spec(pending)})")
            for f, entry in doc["kubernetes"].items():
                print(f"  {f} Job: completions {entry['completions']}, items {entry['items']}")
        return 0
    if args.json:
        rows = [i.to_json() for i in chosen]
        if states is not None:
            rows = [{**r, "state": s} for r, s in zip(rows, states, strict=True)]
        print(dumps({"fingerprint": fingerprint(items), "items": rows}))
        return 0
    header = ["index", "job", "cell", "seed", "run id", "flavour"]
    rows = [[str(i.index), i.job, i.cell or "-", str(i.seed), i.run_id, i.flavour] for i in chosen]
    if states is not None:
        header.insert(1, "state")
        for row, state in zip(rows, states, strict=True):
            row.insert(1, state)
    widths = [max(len(_printable(r[c])) for r in [header, *rows]) for c in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(_printable(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    summary = f"{len(chosen)} items, plan {fingerprint(items)}"
    if states is not None:
        counts = {s: states.count(s) for s in dict.fromkeys(states)}
        summary += ": " + ", ".join(f"{n} {s}" for s, n in counts.items())
    print(summary)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mnist_suite.launch import LaunchOptions
    from mnist_suite.launch.local import LocalLauncher
    from mnist_suite.limits import MAX_CPUS, MAX_WORKERS, int_range
    from mnist_suite.paths import writable_folder

    if not (args.jobs or args.plan or args.all):
        return _train_needs_a_choice(args)
    _, chosen, _ = _selection(args)
    writable_folder(args.runs, "--runs")  # before any item starts or any log is opened
    int_range(args.workers, "--workers", 0, MAX_WORKERS)
    int_range(args.threads, "--threads", 0, MAX_CPUS)
    if not args.containers:
        from mnist_suite.jobs import require_tensorflow

        require_tensorflow({i.job for i in chosen})
    options = LaunchOptions(
        runs=args.runs,
        workers=args.workers,
        threads=args.threads,
        force=args.force,
        reuse_stale=args.reuse_stale,
        data=args.data,
        offline=args.offline,
    )
    if args.containers:
        from mnist_suite.launch.container import ContainerLauncher

        launcher = ContainerLauncher(memory=args.memory, pids=args.pids_limit)
    else:
        launcher = LocalLauncher()
    code = batch_exit_code(launcher.launch(chosen, options).values())
    if args.check:
        from mnist_suite.launch.container import check_runs

        problems = check_runs(args.runs, chosen, in_container=args.containers, uid=os.getuid())
        for problem in problems:
            print(f"problem: {printable(problem)}")
        print(f"checked {args.runs}: {len(chosen)} items, {len(problems)} problems")
        code = code or (EXIT_FAILED if problems else 0)
    return code


def _train_needs_a_choice(args: argparse.Namespace) -> int:
    """A bare ``train`` shows what every job would cost instead of starting it."""
    from mnist_suite.defaults import default_workers
    from mnist_suite.jobs import all_jobs, get_job
    from mnist_suite.plan import build_plan

    items = build_plan(list(all_jobs()), profile=args.profile, seeds=_seeds(args))
    column = 0 if args.profile == "quick" else 1
    seconds = sum(get_job(i.job).seconds[column] for i in items)
    workers = args.workers or default_workers()
    print(
        f"every job, profile {args.profile}: {len(items)} items, about "
        f"{seconds / 60 / workers:.0f} min on {workers} worker{'s' * (workers != 1)}; "
        "name jobs (mnist-suite list) or pass --all to run them all",
        file=sys.stderr,
    )
    return EXIT_USAGE


def batch_exit_code(codes) -> int:
    """128 + signal if stopped (130 SIGINT, 143 SIGTERM, 129 SIGHUP), else 2 for bad usage,
    1 for any other failure; divergence is a result."""
    bad = {c for c in codes if c not in (0, EXIT_DIVERGED)}
    for code in (*EXIT_SIGNALS, EXIT_USAGE):
        if code in bad:
            return code
    return EXIT_FAILED if bad else 0


def cmd_k8s(args: argparse.Namespace) -> int:
    from mnist_suite.launch.kubernetes import KubernetesOptions, manifests

    items, chosen, _ = _selection(args)
    options = KubernetesOptions(
        image_registry=args.image_registry,
        image_tag=args.image_tag,
        parallelism=args.parallelism,
        backoff_limit_per_index=args.backoff_limit_per_index,
        runs_claim=args.runs_claim,
        data_claim=args.data_claim,
        data_file=args.data_file,
        namespace=args.namespace,
        name=args.name,
        cpu=args.cpu,
        memory=args.memory,
        run_as_user=args.run_as_user,
        ttl_seconds_after_finished=args.ttl_seconds_after_finished,
        active_deadline_seconds=args.active_deadline_seconds,
        max_failed_indexes=args.max_failed_indexes,
        node_selector=_pairs(args.node_selector, "--node-selector"),
        tolerations=tuple(args.toleration),
        priority_class=args.priority_class,
        labels=_pairs(args.label, "--label"),
        annotations=_pairs(args.annotation, "--annotation"),
        queue=args.queue,
        image_digests=_pairs(args.image_digest, "--image-digest"),
    )
    print(manifests(items, chosen, _plan_arguments(args), options), end="")
    return 0


def _pairs(texts: list[str], flag: str) -> tuple[tuple[str, str], ...]:
    """``["k=v", ...]`` -> ``(("k", "v"), ...)``; a text without ``=`` is a ConfigError."""
    pairs = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep:
            raise SuiteError(f"{flag} {text!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return tuple(pairs)


def cmd_slurm(args: argparse.Namespace) -> int:
    from mnist_suite.launch.slurm import SlurmOptions, sbatch_script

    items, chosen, _ = _selection(args)
    options = SlurmOptions(
        runs=args.runs,
        mode=args.mode,
        parallelism=args.parallelism,
        cpus=args.cpus,
        memory=args.memory,
        time=args.time,
        logs=args.logs,
        image_registry=args.image_registry,
        image_tag=args.image_tag,
        data=args.data,
        python=args.python,
        partition=args.partition,
        name=args.name,
        account=args.account,
        qos=args.qos,
        constraint=args.constraint,
        sbatch=tuple(args.sbatch),
        signal_seconds=args.signal_seconds,
        allow_local_paths=args.allow_local_paths,
    )
    script = sbatch_script(items, chosen, _plan_arguments(args), options)
    from mnist_suite.paths import writable_folder

    writable_folder(args.logs, "--logs")
    args.logs.mkdir(parents=True, exist_ok=True)  # Slurm does not create the log folder
    print(script, end="")
    return 0


def _plan_arguments(args: argparse.Namespace) -> list[str]:
    """The ``run`` arguments that rebuild this plan on a worker (``--plan`` or the selection)."""
    if getattr(args, "plan", None):
        return ["--plan", str(args.plan)]
    from mnist_suite.jobs import all_jobs

    jobs = args.jobs or list(all_jobs())
    seeds = _seeds(args)
    listed = "default" if seeds is None else ",".join(map(str, seeds))
    out = [*jobs, "--profile", args.profile, "--seeds", listed]
    for pair in args.set:
        out += ["--set", pair]
    return out


def cmd_runs(args: argparse.Namespace) -> int:
    from mnist_suite.files import dumps
    from mnist_suite.fingerprint import for_job_name
    from mnist_suite.runs import find_runs, load_run, newest_code
    from mnist_suite.summary import run_rows_text, summary_document, summary_text

    if args.job is not None and not args.job.replace("-", "").replace("_", "").isalnum():
        raise SuiteError(f"--job {args.job!r}: expected a job name (mnist-suite list)")
    paths = find_runs(args.runs, args.job)
    if not paths:
        where = f"{args.runs}/{args.job}" if args.job else str(args.runs)
        print(f"no runs in {where}" + ("" if Path(args.runs).is_dir() else " (no such folder)"))
        return 0
    records = [load_run(p) for p in paths]
    if not args.all_code:
        records, left_out = newest_code(records)
        if left_out:
            print(f"note: {left_out} runs of older code left out (--all-code shows them)",
                  file=sys.stderr)  # fmt: skip
    if args.summary:
        doc = summary_document(records, str(args.runs))
        print(dumps(doc) if args.json else summary_text(records))
        return 0
    from mnist_suite.summary import run_row

    rows = [run_row(r, for_job_name(r.job)) for r in records]
    if args.json:
        print(dumps({"runs": rows}))
    else:  # names and problems come from the runs folder: no escape reaches the terminal
        print(run_rows_text([{k: _printable(v) for k, v in r.items()} for r in rows]))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mnist_suite import compare
    from mnist_suite.ab import RevisionError, compare_revisions, reading
    from mnist_suite.files import dumps

    rules = compare.parse_min_effects(args.min_effect)
    compare.check_fail_metrics(args.fail_metric, rules)
    if not 0.5 <= args.confidence < 1:
        raise SuiteError(f"--confidence {args.confidence}: expected a coverage in [0.5, 1)")
    if reading(args.base, args.new) == "paths":
        base, new = compare.load_side(Path(args.base)), compare.load_side(Path(args.new))
    else:
        print(f"reading {args.base} and {args.new} as git revisions", file=sys.stderr)
        try:
            base, new = compare_revisions(args, lambda line: print(line, file=sys.stderr))
        except RevisionError as exc:
            print(f"error: {_one_line(str(exc))}", file=sys.stderr)
            return EXIT_FAILED
    if not (base.groups() & new.groups() or base.ratios.keys() & new.ratios.keys()):
        raise SuiteError(f"{args.base} and {args.new} share no job, cell, profile or benchmark")
    rows = compare.compare(base, new, rules, args.confidence)
    if args.json:
        print(dumps(compare.document(base, new, rows, rules, args.confidence)))
    elif args.md:
        print(compare.render_markdown(base, new, rows, rules, args.confidence))
    else:
        print(compare.render_text(base, new, rows, rules, args.confidence))
    failing = compare.regressions(rows, args.fail_metric)
    if args.fail_on == "worse" and failing:
        print(f"failing: {'; '.join(failing)}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mnist_suite.paths import not_overlapping, writable_folder
    from mnist_suite.report import build_report

    runs = args.runs or [runs_folder()]
    writable_folder(args.out.parent, "--out")
    not_overlapping(args.out, "--out", [("--runs", r) for r in runs] + [("--bench", args.bench)])
    build_report(runs, args.bench, args.out, baseline=args.baseline, all_code=args.all_code)
    print(f"report written to {args.out / 'index.html'} (and index.md, results.json)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from mnist_suite.data import cache_dir
    from mnist_suite.paths import writable_file
    from mnist_suite.predict import predict_image

    inputs = {"--weights": args.weights, "--data": args.data, "the cache": cache_dir()}
    writable_file(args.out, "--out", inputs)
    p = predict_image(args.weights, args.index, args.out, _data_options(args))
    print(
        f"image #{p.index} (label {p.label}): prediction {p.predicted} "
        f"with probability {p.probability:.4f} -> {args.out}"
    )
    return 0


class _DeprecatedRunsOut(argparse.Action):
    """The old ``--out`` spelling of the runs folder: still works, says the new name once."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is now --runs (the runs folder)", file=sys.stderr)
        namespace.runs = values


def _add_runs_argument(p: argparse.ArgumentParser, *, old_out: bool = False) -> None:
    p.add_argument(
        "--runs",
        type=_path,
        default=runs_folder(),
        help=f"runs folder (default: ${RUNS_VARIABLE} or ./runs)",
    )
    if old_out:
        p.add_argument("--out", type=_path, action=_DeprecatedRunsOut, help=argparse.SUPPRESS)


def _add_all_code_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--all-code",
        action="store_true",
        help="every version of each job's code (default: each job's newest, the code of its "
        "latest run); figures that pool versions are marked",
    )


def _add_selection_arguments(p: argparse.ArgumentParser, *, all_by_default: bool) -> None:
    """Jobs, profile, seeds and overrides: the arguments that build a plan (mnist_suite.plan)."""
    default = "every job" if all_by_default else "required unless --plan"
    p.add_argument("jobs", nargs="*", metavar="JOB", help=f"job names ({default})")
    p.add_argument("--profile", default="full", choices=PROFILES)
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    seeds.add_argument(
        "--seeds",
        default=None,
        help="seeds: 0-4 or 0,3,7 (one run each); 'default' = each job's own count "
        "(full profile: 5, fewer for long jobs; quick: 1)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable)",
    )
    p.add_argument("--plan", type=_path, default=None, help="a plan saved by `plan --save`")
    p.add_argument("--flavour", choices=FLAVOURS, default=None, help="only the items of this image")
    p.add_argument(
        "--items", default=None, metavar="LIST", help="only these plan indexes, e.g. 4,8,15"
    )
    p.add_argument(
        "--plan-fingerprint", default=None, help="refuse a plan that does not have this fingerprint"
    )
    p.set_defaults(all_jobs_by_default=all_by_default)


def build_parser() -> argparse.ArgumentParser:
    from mnist_suite import __version__
    from mnist_suite.launch.container import CONTAINER_UID, DEFAULT_MEMORY, DEFAULT_PIDS

    parser = argparse.ArgumentParser(
        prog="mnist-suite",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log data sources tried")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="fetch and verify MNIST; print the source and cache path")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("list", help="list the jobs, one line each")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("cells", help="list a job's cells with their index")
    p.add_argument("job")
    p.add_argument("--profile", default="full", choices=PROFILES)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_cells)

    p = sub.add_parser(
        "run",
        help="run work items here, one after another (all, or item --index I of the plan)",
        description="Run the plan's items in this process. --index I (or $MNIST_SUITE_INDEX, "
        "$JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID) runs only item I; for one job and one "
        "seed item I is the job's cell I.",
    )
    _add_selection_arguments(p, all_by_default=False)
    _add_runs_argument(p, old_out=True)
    p.add_argument("--index", type=int, default=None, help="run only this item of the plan")
    p.add_argument("--force", action="store_true", help="re-run items already recorded")
    p.add_argument(
        "--reuse-stale",
        action="store_true",
        help="keep finished runs recorded by other code (default: run them again)",
    )
    _add_data_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "plan", help="print the work plan (job x cell x seed), its status or save it"
    )
    _add_selection_arguments(p, all_by_default=True)
    _add_runs_argument(p)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--save", type=_path, default=None, help="write the plan document to this file")
    p.add_argument("--status", action="store_true", help="each item's state in the runs folder")
    p.add_argument(
        "--pending", action="store_true", help="the indexes to run again, in each engine's form"
    )
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "train", help="run the plan in a process pool (--workers N), --containers in the images"
    )
    _add_selection_arguments(p, all_by_default=True)
    _add_runs_argument(p, old_out=True)
    p.add_argument("--all", action="store_true", help="every job (a bare train only estimates)")
    p.add_argument("--workers", type=int, default=0, help="parallel items (default: one per core)")
    p.add_argument(
        "--threads", type=int, default=0, help="BLAS/TF threads per worker (default: cores/workers)"
    )
    p.add_argument("--force", action="store_true", help="re-run items already recorded")
    p.add_argument(
        "--reuse-stale",
        action="store_true",
        help="keep finished runs recorded by other code (default: run them again)",
    )
    p.add_argument(
        "--containers", action="store_true", help="run each item in its image (Podman/Docker)"
    )
    p.add_argument(
        "--memory", default=DEFAULT_MEMORY, help=f"per container (default {DEFAULT_MEMORY})"
    )
    p.add_argument(
        "--pids-limit", type=int, default=DEFAULT_PIDS, help=f"per container ({DEFAULT_PIDS})"
    )
    p.add_argument("--check", action="store_true", help="then check every item's run folder")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("k8s", help="print Kubernetes Indexed Jobs (one per image) for the plan")
    _add_selection_arguments(p, all_by_default=True)
    p.add_argument("--image-registry", default="", help="e.g. registry.example.com/team")
    p.add_argument("--image-tag", default="", help="tag suffix: mnist-suite:numpy<TAG>")
    p.add_argument("--parallelism", type=int, default=2, help="pods at a time per Job")
    p.add_argument("--backoff-limit-per-index", type=int, default=2)
    p.add_argument("--runs-claim", default="mnist-suite-runs", help="ReadWriteMany PVC")
    p.add_argument("--data-claim", default="mnist-suite-data", help="PVC holding mnist.npz")
    p.add_argument("--data-file", default="mnist.npz", help="file name on the data claim")
    p.add_argument("--namespace", default=None)
    p.add_argument("--name", default="mnist-suite", help="Job name prefix")
    p.add_argument("--cpu", default="1", help="CPU request and limit per pod")
    p.add_argument("--memory", default="4Gi", help="memory request and limit per pod")
    p.add_argument("--run-as-user", type=int, default=CONTAINER_UID, help="the images' user id")
    p.add_argument(
        "--ttl-seconds-after-finished",
        type=_optional_int,
        default=7 * 24 * 3600,
        help="delete finished Jobs after this long (default a week; 'none' keeps them)",
    )
    p.add_argument(
        "--active-deadline-seconds", type=_optional_int, default=None, help="the Job's time limit"
    )
    p.add_argument(
        "--max-failed-indexes",
        type=_optional_int,
        default=None,
        help="fail the Job once this many indexes failed",
    )
    repeatable = {"action": "append", "default": []}  # each of these may be given many times
    p.add_argument(
        "--node-selector", metavar="KEY=VALUE", help="only nodes with this label", **repeatable
    )
    p.add_argument(
        "--toleration", metavar="KEY[=VALUE]:EFFECT", help="tolerate this taint", **repeatable
    )
    p.add_argument("--priority-class", default=None, help="the pods' PriorityClass")
    p.add_argument("--label", metavar="KEY=VALUE", help="extra label", **repeatable)
    p.add_argument("--annotation", metavar="KEY=VALUE", help="extra annotation", **repeatable)
    p.add_argument("--queue", default=None, help="Kueue LocalQueue (kueue.x-k8s.io/queue-name)")
    p.add_argument(
        "--image-digest",
        metavar="FLAVOUR=sha256:…",
        help="pull that flavour's image by digest",
        **repeatable,
    )
    p.set_defaults(func=cmd_k8s)

    p = sub.add_parser("slurm", help="print a Slurm array job (sbatch script) for the plan")
    _add_selection_arguments(p, all_by_default=True)
    _add_runs_argument(p)
    p.add_argument(
        "--mode",
        choices=("auto", "podman", "apptainer", "python"),
        default="auto",
        help="how a task runs: the image (podman/apptainer, auto picks) or this python",
    )
    p.add_argument("--parallelism", type=int, default=0, help="tasks at a time (%%P; 0 = any)")
    p.add_argument("--cpus", type=int, default=1, help="CPUs per task")
    p.add_argument("--memory", default="4G", help="memory per task")
    p.add_argument("--time", default="02:00:00", help="time limit per task")
    p.add_argument("--logs", type=_path, default=Path("slurm-logs"), help="per-task log folder")
    p.add_argument("--image-registry", default="")
    p.add_argument("--image-tag", default="")
    p.add_argument("--data", type=_path, default=None, help="mnist.npz on the nodes")
    p.add_argument("--python", default=sys.executable, help="python for --mode python")
    p.add_argument("--partition", default=None)
    p.add_argument("--name", default="mnist-suite", help="job name")
    p.add_argument("--account", default=None, help="Slurm account to charge")
    p.add_argument("--qos", default=None, help="quality of service")
    p.add_argument("--constraint", default=None, help="node features, e.g. 'intel&avx512'")
    p.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="OPTION",
        help="an extra #SBATCH line, e.g. --sbatch=--mail-type=END (repeatable)",
    )
    p.add_argument(
        "--signal-seconds",
        type=int,
        default=120,
        help="stop and requeue a task this long before its time limit (0: never; at most half "
        "of --time; default 120)",
    )
    p.add_argument(
        "--allow-local-paths",
        action="store_true",
        help="allow the local image name and this machine's MNIST cache (one-node clusters)",
    )
    p.set_defaults(func=cmd_slurm)

    p = sub.add_parser("runs", help="list recorded runs with their state")
    _add_runs_argument(p, old_out=True)
    p.add_argument("--job", default=None)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument(
        "--summary",
        action="store_true",
        help="per job/cell/profile: n, mean ± 95%% CI, the original's figure, time to target "
        "(with --json: a baseline document for `compare`)",
    )
    _add_all_code_argument(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "compare",
        help="BASE vs NEW (runs folders, results.json, benchmark results): better, worse or "
        "no detectable change, beyond noise",
    )
    p.add_argument(
        "base",
        help="runs folder, results.json/baseline, benchmark JSON; or a git revision",
    )
    p.add_argument("new", help="the same kind as BASE")
    ab = p.add_argument_group(
        "two git revisions",
        "each revision is checked out once under build/ab/ and runs its own code; both sides "
        "run the same jobs, profile, seeds and overrides, alternating seed by seed",
    )
    ab.add_argument("--jobs", nargs="+", default=[], metavar="JOB", help="the jobs to run")
    ab.add_argument("--profile", default="quick", choices=PROFILES, help="default: quick")
    ab.add_argument("--seeds", default="0-3", help="paired seeds, as in run (default: 0-3)")
    ab.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an override for both"
    )
    ab.add_argument(
        "--runs",
        type=_path,
        default=None,
        help="runs folder of both sides (default: build/ab/runs)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--md", action="store_true", help="a markdown table")
    out.add_argument("--json", action="store_true", help="JSON")
    p.add_argument(
        "--fail-on", choices=("worse",), default=None, help="exit 1 if any figure got worse"
    )
    p.add_argument(
        "--fail-metric",
        action="append",
        default=[],
        metavar="METRIC",
        help="with --fail-on: only these metrics fail (repeatable; default every metric); "
        "a metric no row judges fails",
    )
    p.add_argument(
        "--min-effect",
        action="append",
        default=[],
        metavar="METRIC=X",
        help="a metric's minimum effect: absolute (test_accuracy=0.005) or relative "
        "(wall_seconds=50%%); repeatable",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="coverage of the difference's interval (default 0.95; a CI gate may ask 0.99)",
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "predict",
        help="classify one test image with saved weights; save a PNG",
        description="Classify one test image with the weights a classifier run saved "
        "(artifacts/weights.npz of softmax, softmax-original, mlp, mlp-fast, mlp-original; "
        "the TensorFlow and autoencoder jobs save no classifier weights).",
    )
    p.add_argument("--weights", type=_path, required=True, help="a run's artifacts/weights.npz")
    p.add_argument("--index", type=int, required=True, help="test image index (0..9999)")
    p.add_argument("--out", type=_path, required=True, help="the PNG to write")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="write tables and figures of recorded runs and benchmarks")
    p.add_argument(
        "--runs",
        type=_path,
        action="append",
        default=None,
        help=f"runs folder, repeatable (default: ${RUNS_VARIABLE} or ./runs)",
    )
    p.add_argument(
        "--bench",
        type=_path,
        default=BENCH_RESULTS,
        help=f"folder of pytest-benchmark JSON files (default: {BENCH_RESULTS}, if present)",
    )
    p.add_argument("--out", type=_path, default=REPORT_FOLDER, help="report folder (replaced)")
    p.add_argument(
        "--baseline",
        type=_path,
        default=None,
        help="add 'Changes against a baseline': a runs folder, results.json or summary baseline",
    )
    _add_all_code_argument(p)
    p.set_defaults(func=cmd_report)
    return parser


# Arguments whose value is a list (nargs="*" or action="append"): [] is their default.
LIST_ARGUMENTS = {"jobs", "set", "sbatch", "node_selector", "toleration", "label", "annotation",
                  "image_digest", "fail_metric", "min_effect"}  # fmt: skip


def _one_line(text: str) -> str:
    """``text`` with control characters escaped: a message quoting user input stays one line."""
    return printable(text)


def _printable(value):
    """A text value as a terminal listing shows it (control characters escaped); others as is."""
    return printable(value) if isinstance(value, str) else value


# Commands that run or judge code: they say when the code running is not the checkout here.
CODE_COMMANDS = ("run", "train", "plan", "compare", "k8s", "slurm")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for key, value in vars(args).items():
        # argparse turns a value of "--" (``--data=--``) into an empty list (or appends one).
        if (value == [] and key not in LIST_ARGUMENTS) or (isinstance(value, list) and [] in value):
            parser.error(f"--{key.replace('_', '-')}: expected a value")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    if args.command in CODE_COMMANDS:
        from mnist_suite.fingerprint import checkout_note

        note = checkout_note()
        if note:
            print(note, file=sys.stderr)
    try:
        return args.func(args)
    except SuiteError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`mnist-suite plan | head`): not our error. Point stdout at devnull so
        # the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, RecursionError) as exc:
        # A fault of the machine (full disk, read-only mount, symlink loop): one line, exit 1.
        why = f"{exc.strerror}: {exc.filename}" if getattr(exc, "strerror", None) else exc
        print(f"error: {_one_line(str(why))}", file=sys.stderr)
        return EXIT_FAILED
