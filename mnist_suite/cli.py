"""`mnist-suite` / `python -m mnist_suite`: one entry point for every job, here or in a container.

One function per command: it calls the library and prints what it returns. The arguments are
declared in :mod:`mnist_suite.arguments`; the work is done by the library
(:mod:`mnist_suite.batch` decides and runs the items of a plan, :mod:`mnist_suite.launch`
starts them elsewhere). Exit codes come from :mod:`mnist_suite.errors`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from mnist_suite import batch, defaults, errors
from mnist_suite.arguments import build_parser, check_values
from mnist_suite.errors import EXIT_FAILED, EXIT_SIGINT, EXIT_USAGE, SuiteError
from mnist_suite.options import from_arguments
from mnist_suite.text import printable


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
    if args.json:
        from mnist_suite.fingerprint import of_job
        from mnist_suite.jobs import describe

        listed = [{**describe(job), "fingerprint": of_job(job)} for job in jobs.values()]
        print(json.dumps(listed, indent=2, default=str))
        return 0
    if args.code:
        # What a launcher asks an image: the code each job would run there.
        from mnist_suite.fingerprint import of_job

        for name, job in jobs.items():
            print(f"{name:<{width}}  {of_job(job)}")
        return 0
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
    line, problem = batch.outcome_lines(item, outcome)
    print(line, flush=True)
    if problem:
        print(problem, file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    return batch.run(
        _selection(args),
        args.runs,
        index=args.index,
        data_options=_data_options(args),
        force=args.force,
        reuse_outdated=args.reuse_outdated,
        on_outcome=_print_outcome,
    )


def cmd_plan(args: argparse.Namespace) -> int:
    from mnist_suite.files import writable_file

    selection = _selection(args)
    if not args.save:
        print(batch.plan_listing(selection, args.runs, args.status, args.pending, args.json))
        return 0
    items, _, _ = batch.select(selection)
    writable_file(args.save, "--save", {"--plan": args.plan}, runs=[args.runs])
    print(batch.save_plan(items, args.save))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mnist_suite.files import writable_folder
    from mnist_suite.launch import LaunchOptions
    from mnist_suite.limits import MAX_CPUS, MAX_WORKERS, int_range

    if not (args.jobs or args.plan or args.all):
        workers = args.workers or defaults.default_workers()
        estimate = batch.estimate_text(args.profile, _selection(args).seed_list(), workers)
        print(f"{estimate}; name jobs (mnist-suite list) or pass --all to run them all",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    _, chosen, _ = batch.select(_selection(args))
    writable_folder(args.runs, "--runs")  # before any item starts or any log is opened
    int_range(args.workers, "--workers", 0, MAX_WORKERS)
    int_range(args.threads, "--threads", 0, MAX_CPUS)
    if args.containers:
        from mnist_suite.launch.container import ContainerLauncher
        from mnist_suite.plugins import refuse_in_images

        refuse_in_images({i.job for i in chosen})
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
    from mnist_suite.plugins import refuse_in_images

    selection = _selection(args)
    items, chosen, _ = batch.select(selection)
    refuse_in_images({i.job for i in chosen})
    options = from_arguments(KubernetesOptions, args)
    print(manifests(items, chosen, selection.run_arguments(), options), end="")
    return 0


def cmd_slurm(args: argparse.Namespace) -> int:
    from mnist_suite.files import writable_folder
    from mnist_suite.launch.slurm import SlurmOptions, sbatch_script

    selection = _selection(args)
    items, chosen, _ = batch.select(selection)
    script = sbatch_script(
        items, chosen, selection.run_arguments(), from_arguments(SlurmOptions, args)
    )
    writable_folder(args.logs, "--logs", runs=[args.runs])
    args.logs.mkdir(parents=True, exist_ok=True)  # Slurm does not create the log folder
    print(script, end="")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from mnist_suite.summary import listing

    text, left_out = listing(
        args.runs, args.job, summary=args.summary, as_json=args.json, all_code=args.all_code
    )
    if left_out:
        print(f"note: {left_out} runs of older code left out (--all-code shows them)",
              file=sys.stderr)  # fmt: skip
    print(text)
    return 0


def _say(line: str) -> None:
    """A progress line of a long command, on stderr (stdout carries its answer)."""
    print(line, file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    from mnist_suite import compare, sequential
    from mnist_suite.ab import RevisionError, Stopped, compare_revisions, reading, stop_on_signals

    options = from_arguments(compare.CompareOptions, args)
    options.rules()  # checked before any revision is built
    sequential.check(args)
    decided = None
    if reading(args.base, args.new) == "paths":
        if args.containers:
            raise SuiteError("--containers runs git revisions in their own images; "
                             f"{args.base} and {args.new} are folders or files")  # fmt: skip
        if args.until_decided:
            raise SuiteError("--until-decided runs more seeds of two git revisions; "
                             f"{args.base} and {args.new} are folders or files")  # fmt: skip
        base, new = compare.load_side(Path(args.base)), compare.load_side(Path(args.new))
    else:
        print(f"reading {args.base} and {args.new} as git revisions", file=sys.stderr)
        try:
            with stop_on_signals():
                if args.until_decided:
                    decided = sequential.until_decided(args, options, _say)
                    base, new = decided.base, decided.new
                else:
                    base, new = compare_revisions(args, _say)
        except RevisionError as exc:
            print(f"error: {printable(str(exc))}", file=sys.stderr)
            return EXIT_FAILED
        except Stopped as exc:
            print(f"stopping on {exc}: {printable(exc.note)}", file=sys.stderr)
            return 128 + exc.signum
    if not compare.shared(base, new):
        raise SuiteError(f"{args.base} and {args.new} share no job, cell, profile or benchmark")
    text, failing = decided.judge(options) if decided else compare.judge(base, new, options)
    print(text)
    if failing:
        print(f"failing: {'; '.join(failing)}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_bisect(args: argparse.Namespace) -> int:
    from mnist_suite.ab import RevisionError, Stopped, stop_on_signals
    from mnist_suite.bisect import Bisect

    search = Bisect(args, lambda line: print(line, file=sys.stderr))  # checked before any run
    try:
        with stop_on_signals():
            answer = search.run()
    except RevisionError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except Stopped as exc:
        print(f"stopping on {exc}: {printable(exc.note)}; the same call continues",
              file=sys.stderr)  # fmt: skip
        return 128 + exc.signum
    print(answer.text())
    return answer.exit_code


def cmd_history(args: argparse.Namespace) -> int:
    from mnist_suite.history import history

    text, notes = history(args)
    for note in notes:
        print(note, file=sys.stderr)
    print(text)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mnist_suite.files import not_overlapping, writable_folder
    from mnist_suite.report import SectionFailed, build_report

    runs = args.runs or [defaults.runs_folder()]
    keep = [("--runs", r) for r in runs] + [("--bench", args.bench)]
    not_overlapping(args.out, "--out", keep, runs=("--runs",))
    writable_folder(args.out.parent, "--out")
    try:
        results = build_report(runs, args.bench, args.out, baseline=args.baseline,
                               all_code=args.all_code, force=args.force)  # fmt: skip
    except SectionFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        from mnist_suite.report import outline

        print(json.dumps(outline(args.out, results), indent=2))
        return 0
    print(f"report written to {args.out / 'index.html'} (and index.md, results.json)")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from mnist_suite.launch.worker import serve

    return serve()


def cmd_predict(args: argparse.Namespace) -> int:
    from mnist_suite.data import cache_dir
    from mnist_suite.files import writable_file
    from mnist_suite.predict import predict_image

    inputs = {"--weights": args.weights, "--data": args.data, "the cache": cache_dir()}
    writable_file(args.out, "--out", inputs, runs=[defaults.runs_folder()])
    p = predict_image(args.weights, args.index, args.out, _data_options(args))
    print(
        f"image #{p.index} (label {p.label}): prediction {p.predicted} "
        f"with probability {p.probability:.4f} -> {args.out}"
    )
    return 0


COMMANDS = {
    "data": cmd_data,
    "list": cmd_list,
    "cells": cmd_cells,
    "run": cmd_run,
    "plan": cmd_plan,
    "train": cmd_train,
    "k8s": cmd_k8s,
    "slurm": cmd_slurm,
    "runs": cmd_runs,
    "compare": cmd_compare,
    "bisect": cmd_bisect,
    "history": cmd_history,
    "predict": cmd_predict,
    "report": cmd_report,
    "worker": cmd_worker,
}

# Commands that run or judge code: they say when the code running is not the checkout here.
CODE_COMMANDS = ("run", "train", "plan", "compare", "bisect", "k8s", "slurm")


def _configure_logging(verbose: bool) -> None:
    """Library logs on stderr (INFO with -v, else WARNING); epoch lines as they are, always."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        force=True,  # each call of main writes to the stderr of its time
    )
    progress = logging.getLogger("mnist_suite.progress")
    progress.handlers = [logging.StreamHandler()]
    progress.setLevel(logging.INFO)
    progress.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_values(parser, args)
    _configure_logging(args.verbose)
    if args.command in CODE_COMMANDS:
        from mnist_suite.fingerprint import checkout_note

        note = checkout_note()
        if note:
            print(note, file=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except (SuiteError, errors.ParameterError) as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_USAGE)  # a kind's code; a ParameterError is usage
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
        why = why or (f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror)
        print(f"error: {printable(str(why))}", file=sys.stderr)
        return EXIT_FAILED
