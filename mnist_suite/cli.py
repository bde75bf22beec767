"""`mnist-suite` / `python -m mnist_suite`: one entry point for every job, here or in a container.

The parser, one function per command and what it prints; the work is done by the library
(:mod:`mnist_suite.batch` decides and runs the items of a plan, :mod:`mnist_suite.launch`
starts them elsewhere). Exit codes come from :mod:`mnist_suite.errors`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from textwrap import fill

from mnist_suite import batch, defaults, errors
from mnist_suite.errors import EXIT_FAILED, EXIT_SIGINT, EXIT_USAGE, SuiteError
from mnist_suite.options import add_arguments, from_arguments, path
from mnist_suite.text import printable

EPILOG = f"""\
exit codes:
  0    success (in a batch, a diverged run is a result)
  1    a run failed, compare --fail-on found a regression, or the machine failed (full disk)
  2    bad usage, configuration, path or data (one line on stderr, nothing run)
  3    a single run diverged (non-finite loss)
  130  interrupted by Ctrl-C (143: SIGTERM, 129: SIGHUP to a train pool); the running
       items end 'interrupted'

environment:
{
    "".join(
        fill(f"{k:<23} {v}", 92, initial_indent="  ", subsequent_indent=" " * 26) + chr(10)
        for k, v in defaults.USER_VARIABLES.items()
    )
}
docs: README.md and docs/ in the source tree.
"""


def _selection(args: argparse.Namespace) -> batch.Selection:
    return from_arguments(batch.Selection, args)


def _data_options(args: argparse.Namespace) -> dict:
    return {"path": args.data, "offline": args.offline or None}


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
    for i, (label, _) in enumerate(job.expand(job.resolve(args.profile, args.overrides))):
        print(f"{i}\t{printable(label or job.name)}")
    return 0


def _print_outcome(item, outcome) -> None:
    """One line per item on stdout; why it did not succeed on stderr."""
    shown, note = outcome.state, ""
    # Messages quote claim files and records another host or user wrote: one line each.
    name, message = printable(item.name), printable(outcome.message)
    held = outcome.skipped and outcome.state == "running"  # another attempt owns it
    if held:
        note = f" ({message}; not run here)"
    elif outcome.skipped:
        shown, note = "skipped", f" ({outcome.state}, {message}, skipped)"
    print(f"{shown:<11} {printable(str(outcome.path))}{note}", flush=True)
    if held:
        print(f"error: {name}: {message}; not run here", file=sys.stderr)
    elif outcome.state in ("failed", "unreadable"):
        print(f"error: {name}: {message}", file=sys.stderr)
    elif outcome.state == "diverged":
        print(f"warning: {name}: diverged: {message}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from mnist_suite.paths import writable_folder

    _, chosen, what = batch.select(_selection(args))
    chosen = batch.pick(chosen, what, args.index)
    writable_folder(args.runs, "--runs")
    return batch.run_items(
        chosen,
        args.runs,
        data_options=_data_options(args),
        force=args.force,
        reuse_outdated=args.reuse_outdated,
        on_outcome=_print_outcome,
    )


def cmd_plan(args: argparse.Namespace) -> int:
    from mnist_suite.files import atomic_write_json, dumps
    from mnist_suite.plan import plan_document, plan_hash

    items, chosen, _ = batch.select(_selection(args))
    if args.save:
        from mnist_suite.paths import writable_file

        writable_file(args.save, "--save", {"--plan": args.plan})
        atomic_write_json(args.save, plan_document(items))
        print(f"plan {plan_hash(items)} ({len(items)} items) saved to {args.save}")
        return 0
    states = batch.item_states(chosen, args.runs) if args.status or args.pending else None
    if args.pending:
        doc = batch.pending_document(items, chosen, states)
        print(dumps(doc) if args.json else batch.pending_text(doc, len(chosen)))
    elif args.json:
        print(dumps(batch.plan_json(items, chosen, states)))
    else:
        print(batch.plan_text(items, chosen, states))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mnist_suite.launch import LaunchOptions
    from mnist_suite.limits import MAX_CPUS, MAX_WORKERS, int_range
    from mnist_suite.paths import writable_folder

    if not (args.jobs or args.plan or args.all):
        from mnist_suite.defaults import default_workers

        workers = args.workers or default_workers()
        n, minutes = batch.estimate(args.profile, _selection(args).seed_list(), workers)
        print(
            f"every job, profile {args.profile}: {n} items, about {minutes:.0f} min on "
            f"{workers} worker{'s' * (workers != 1)}; name jobs (mnist-suite list) or pass "
            "--all to run them all",
            file=sys.stderr,
        )
        return EXIT_USAGE
    _, chosen, _ = batch.select(_selection(args))
    writable_folder(args.runs, "--runs")  # before any item starts or any log is opened
    int_range(args.workers, "--workers", 0, MAX_WORKERS)
    int_range(args.threads, "--threads", 0, MAX_CPUS)
    if args.containers:
        from mnist_suite.launch.container import ContainerLauncher

        launcher = ContainerLauncher(memory=args.memory, pids=args.pids_limit)
    else:
        from mnist_suite.jobs import require_tensorflow
        from mnist_suite.launch.local import LocalLauncher

        require_tensorflow({i.job for i in chosen})
        launcher = LocalLauncher()
    codes = launcher.launch(chosen, from_arguments(LaunchOptions, args, logs=None))
    code = batch.batch_exit_code(codes.values())
    if args.check:
        from mnist_suite.launch.container import check_runs

        problems = check_runs(args.runs, chosen, in_container=args.containers, uid=os.getuid())
        for problem in problems:
            print(f"problem: {printable(problem)}")
        print(f"checked {args.runs}: {len(chosen)} items, {len(problems)} problems")
        code = code or (EXIT_FAILED if problems else 0)
    return code


def cmd_k8s(args: argparse.Namespace) -> int:
    from mnist_suite.launch.kubernetes import KubernetesOptions, manifests

    selection = _selection(args)
    items, chosen, _ = batch.select(selection)
    options = from_arguments(KubernetesOptions, args)
    print(manifests(items, chosen, selection.run_arguments(), options), end="")
    return 0


def cmd_slurm(args: argparse.Namespace) -> int:
    from mnist_suite.launch.slurm import SlurmOptions, sbatch_script
    from mnist_suite.paths import writable_folder

    selection = _selection(args)
    items, chosen, _ = batch.select(selection)
    script = sbatch_script(
        items, chosen, selection.run_arguments(), from_arguments(SlurmOptions, args)
    )
    writable_folder(args.logs, "--logs")
    args.logs.mkdir(parents=True, exist_ok=True)  # Slurm does not create the log folder
    print(script, end="")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from mnist_suite.files import dumps
    from mnist_suite.fingerprint import for_job_name
    from mnist_suite.runs import find_runs, load_run, newest_code
    from mnist_suite.summary import run_row, run_rows_text, summary_document, summary_text

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

    runs = args.runs or [defaults.runs_folder()]
    writable_folder(args.out.parent, "--out")
    not_overlapping(args.out, "--out", [("--runs", r) for r in runs] + [("--bench", args.bench)])
    build_report(runs, args.bench, args.out, baseline=args.baseline, all_code=args.all_code)
    print(f"report written to {args.out / 'index.html'} (and index.md, results.json)")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from mnist_suite.launch.worker import serve

    return serve()


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


def _add_runs(p: argparse.ArgumentParser, *, old_out: bool = False) -> None:
    help = f"runs folder (default: ${defaults.RUNS_VARIABLE} or ./runs)"
    p.add_argument("--runs", type=path, default=defaults.runs_folder(), help=help)
    if old_out:
        p.add_argument("--out", type=path, action=_DeprecatedRunsOut, help=argparse.SUPPRESS)


def _add_data(p: argparse.ArgumentParser) -> None:
    help = "an mnist.npz or a folder of IDX files (default: $MNIST_SUITE_DATA)"
    p.add_argument("--data", type=path, default=None, help=help)
    p.add_argument("--offline", action="store_true", help="never touch the network (also "
                   "$MNIST_SUITE_OFFLINE=1)")  # fmt: skip


def _add_selection(p: argparse.ArgumentParser, *, all_by_default: bool) -> None:
    """The plan arguments (:class:`mnist_suite.batch.Selection`)."""
    add_arguments(p, batch.Selection)
    p.set_defaults(all_by_default=all_by_default)


def _add_all_code(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all-code", action="store_true", help="every version of each job's code "
                   "(default: each job's newest, the code of its latest run); figures that pool "
                   "versions are marked")  # fmt: skip


def _command(sub, name: str, func, help: str, **kwargs) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, **kwargs)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    from mnist_suite import __version__
    from mnist_suite.launch import LaunchOptions
    from mnist_suite.launch.container import DEFAULT_MEMORY, DEFAULT_PIDS
    from mnist_suite.launch.kubernetes import KubernetesOptions
    from mnist_suite.launch.slurm import SlurmOptions

    parser = argparse.ArgumentParser(
        prog="mnist-suite",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log data sources tried")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_data(
        _command(sub, "data", cmd_data, "fetch and verify MNIST; print the source and cache path")
    )
    _command(sub, "list", cmd_list, "list the jobs, one line each")
    p = _command(sub, "cells", cmd_cells, "list a job's cells with their index")
    p.add_argument("job")
    add_arguments(p, batch.Selection, only=("profile", "overrides"))

    p = _command(sub, "run", cmd_run, "run work items here, one after another (all, or item "
                 "--index I of the plan)", description="Run the plan's items in this process. "
                 "--index I (or $MNIST_SUITE_INDEX, $JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID) "
                 "runs only item I; for one job and one seed item I is the job's cell "
                 "I.")  # fmt: skip
    _add_selection(p, all_by_default=False)
    _add_runs(p, old_out=True)
    p.add_argument("--index", type=int, default=None, help="run only this item of the plan")
    add_arguments(p, LaunchOptions, skip=("workers", "threads"))
    _add_data(p)

    p = _command(
        sub, "plan", cmd_plan, "print the work plan (job x cell x seed), its status or save it"
    )
    _add_selection(p, all_by_default=True)
    _add_runs(p)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--save", type=path, default=None, help="write the plan document to this file")
    p.add_argument("--status", action="store_true", help="each item's state in the runs folder")
    p.add_argument(
        "--pending", action="store_true", help="the indexes to run again, in each engine's form"
    )

    p = _command(sub, "train", cmd_train, "run the plan in a process pool (--workers N), "
                 "--containers in the images")  # fmt: skip
    _add_selection(p, all_by_default=True)
    _add_runs(p, old_out=True)
    p.add_argument("--all", action="store_true", help="every job (a bare train only estimates)")
    add_arguments(p, LaunchOptions)
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
    _add_data(p)

    p = _command(sub, "k8s", cmd_k8s, "print Kubernetes Indexed Jobs (one per image) for the plan")
    _add_selection(p, all_by_default=True)
    add_arguments(p, KubernetesOptions)

    p = _command(sub, "slurm", cmd_slurm, "print a Slurm array job (sbatch script) for the plan")
    _add_selection(p, all_by_default=True)
    _add_runs(p)
    add_arguments(p, SlurmOptions)

    p = _command(sub, "runs", cmd_runs, "list recorded runs with their state")
    _add_runs(p, old_out=True)
    p.add_argument("--job", default=None)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--summary", action="store_true", help="per job/cell/profile: n, mean ± 95%% "
                   "CI, the original's figure, time to target (with --json: a baseline document "
                   "for `compare`)")  # fmt: skip
    _add_all_code(p)

    p = _command(sub, "compare", cmd_compare, "BASE vs NEW (runs folders, results.json, benchmark "
                 "results, or two git revisions): better, worse or no detectable change, beyond "
                 "noise")  # fmt: skip
    p.add_argument("base", help="runs folder, results.json/baseline, benchmark JSON; or a git "
                   "revision")  # fmt: skip
    p.add_argument("new", help="the same kind as BASE")
    ab = p.add_argument_group("two git revisions", "each revision is checked out once under "
                              "build/ab/ and runs its own code; both run the same jobs, profile, "
                              "seeds and overrides, BASE's item then NEW's")  # fmt: skip
    ab.add_argument("--jobs", nargs="+", default=[], metavar="JOB", help="the jobs to run")
    ab.add_argument("--profile", default="quick", choices=defaults.PROFILES, help="default: quick")
    ab.add_argument("--seeds", default="0-3", help="paired seeds, as in run (default: 0-3)")
    ab.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for both sides (repeatable)")  # fmt: skip
    ab.add_argument("--runs", type=path, default=None, help="both sides' runs folder (default: "
                    "build/ab/runs)")  # fmt: skip
    out = p.add_mutually_exclusive_group()
    out.add_argument("--md", action="store_true", help="a markdown table")
    out.add_argument("--json", action="store_true", help="JSON")
    p.add_argument(
        "--fail-on", choices=("worse",), default=None, help="exit 1 if any figure got worse"
    )
    p.add_argument("--fail-metric", action="append", default=[], metavar="METRIC",
                   help="with --fail-on: only these metrics fail (repeatable; default every "
                   "metric); a metric no row judges fails")  # fmt: skip
    p.add_argument("--min-effect", action="append", default=[], metavar="METRIC=X",
                   help="a metric's minimum effect: absolute (test_accuracy=0.005) or relative "
                   "(wall_seconds=50%%); repeatable")  # fmt: skip
    p.add_argument("--confidence", type=float, default=0.95, help="coverage of the difference's "
                   "interval (default 0.95; a CI gate may ask 0.99)")  # fmt: skip

    p = _command(sub, "predict", cmd_predict, "classify one test image with saved weights; save "
                 "a PNG", description="Classify one test image with the weights a classifier run "
                 "saved (artifacts/weights.npz of softmax, softmax-original, mlp, mlp-fast, "
                 "mlp-original; the TensorFlow and autoencoder jobs save no classifier "
                 "weights).")  # fmt: skip
    p.add_argument("--weights", type=path, required=True, help="a run's artifacts/weights.npz")
    p.add_argument("--index", type=int, required=True, help="test image index (0..9999)")
    p.add_argument("--out", type=path, required=True, help="the PNG to write")
    _add_data(p)

    p = _command(
        sub, "report", cmd_report, "write tables and figures of recorded runs and benchmarks"
    )
    p.add_argument("--runs", type=path, action="append", default=None,
                   help=f"runs folder, repeatable (default: ${defaults.RUNS_VARIABLE} or "
                   "./runs)")  # fmt: skip
    p.add_argument("--bench", type=path, default=defaults.BENCH_RESULTS, help="folder of "
                   f"pytest-benchmark JSON files (default: {defaults.BENCH_RESULTS}, if "
                   "present)")  # fmt: skip
    p.add_argument(
        "--out", type=path, default=defaults.REPORT_FOLDER, help="report folder (replaced)"
    )
    p.add_argument("--baseline", type=path, default=None, help="add 'Changes against a "
                   "baseline': a runs folder, results.json or summary baseline")  # fmt: skip
    _add_all_code(p)
    _command(sub, "worker", cmd_worker, "run the items given on standard input, one JSON argv "
             "per line, answering each exit code (a pool's warm worker)")  # fmt: skip
    return parser


# Arguments whose value is a list (nargs="*" or action="append"): [] is their default.
LIST_ARGUMENTS = {"jobs", "overrides", "sbatch", "node_selector", "tolerations", "labels",
                  "annotations", "image_digests", "fail_metric", "min_effect"}  # fmt: skip


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
    except (SuiteError, errors.ParameterError) as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:
        # The reader left (`mnist-suite plan | head`): not our error. Point stdout at devnull so
        # the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, RecursionError) as exc:
        # A fault of the machine (full disk, read-only mount, symlink loop): one line, exit 1.
        why = (
            exc
            if isinstance(exc, errors.RunIOError) or not getattr(exc, "strerror", None)
            else None
        )
        why = why or f"{exc.strerror}: {exc.filename}"
        print(f"error: {_one_line(str(why))}", file=sys.stderr)
        return EXIT_FAILED
