"""`mnist-suite` / `python -m training`: one entry point for every job, here or in a container.

Exit codes: 0 success; 1 a run failed; 2 bad usage, config or data; 3 a single run diverged;
130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from training.errors import SuiteError

EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130


def _data_options(args: argparse.Namespace) -> dict:
    return {"path": args.data, "offline": args.offline or None}


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="an mnist.npz or a folder of IDX files (default: $MNIST_SUITE_DATA)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="never touch the network (also $MNIST_SUITE_OFFLINE=1)",
    )


def cmd_data(args: argparse.Namespace) -> int:
    from training.data import load_mnist

    mnist = load_mnist(**_data_options(args))
    print(f"MNIST verified (sha256 of all four arrays): source={mnist.source} at {mnist.location}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from training.jobs import all_jobs

    jobs = all_jobs()
    width = max(map(len, jobs), default=0)
    for name, job in jobs.items():
        print(f"{name:<{width}}  {job.summary}")
    return 0


def cmd_cells(args: argparse.Namespace) -> int:
    from training.jobs import get_job

    job = get_job(args.job)
    for i, (label, _) in enumerate(job.expand(job.resolve(args.profile, args.set))):
        print(f"{i}\t{label or job.name}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from training.jobs import get_job
    from training.runs import execute

    job = get_job(args.job)
    config = job.resolve(args.profile, args.set)
    cells = job.expand(config)
    if args.index is not None:
        if not 0 <= args.index < len(cells):
            raise SuiteError(f"--index {args.index}: {job.name} has cells 0..{len(cells) - 1}")
        cells = [cells[args.index]]
    codes = []
    for label, cell_config in cells:
        name = f"{job.name}/{label}" if label else job.name
        run_id = job.run_id(label, cell_config, args.profile, args.seed)
        outcome = execute(
            job,
            label,
            cell_config,
            seed=args.seed,
            profile=args.profile,
            out=args.out,
            run_id=run_id,
            data_options=_data_options(args),
            force=args.force,
        )
        note = " (already recorded, skipped)" if outcome.skipped else ""
        print(f"{outcome.state:<11} {outcome.path}{note}", flush=True)
        if outcome.state == "failed":
            print(f"error: {name}: {outcome.message}", file=sys.stderr)
            codes.append(EXIT_FAILED)
        elif outcome.state == "diverged":
            print(f"warning: {name}: diverged: {outcome.message}", file=sys.stderr)
            # In a batch (sweep, grid) divergence is a result; alone, the run did not succeed.
            codes.append(EXIT_DIVERGED if len(cells) == 1 else 0)
    return max(codes, default=0)


def cmd_runs(args: argparse.Namespace) -> int:
    from training.runs import find_runs, load_run

    for path in find_runs(args.out, args.job):
        run = load_run(path)
        metrics = run["metrics"]
        headline = next(
            (
                f"{k}={metrics[k]:.4g}"
                for k in ("test_accuracy", "test_mse")
                if isinstance(metrics.get(k), int | float)
            ),
            "",
        )
        print(f"{run['state']:<11} {path}  {headline}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from training.report import build_report

    build_report(args.runs, args.bench, args.out)
    print(f"report written to {args.out / 'index.html'} (and index.md, results.json)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from training.predict import predict_image

    p = predict_image(args.weights, args.index, args.out, _data_options(args))
    print(
        f"image #{p.index} (label {p.label}): prediction {p.predicted} "
        f"with probability {p.probability:.4f} -> {args.out}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-suite", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log data sources tried")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="fetch and verify MNIST; print the source and cache path")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("list", help="list the jobs, one line each")
    p.set_defaults(func=cmd_list)

    for name, func, helptext in (
        ("run", cmd_run, "run a job (every cell, or one with --index)"),
        ("cells", cmd_cells, "list a job's cells with their index"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("job")
        p.add_argument("--profile", default="full", choices=("quick", "full"))
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config field (repeatable)",
        )
        p.set_defaults(func=func)
        if name == "run":
            p.add_argument("--seed", type=int, default=0)
            p.add_argument(
                "--out",
                type=Path,
                default=Path(os.environ.get("MNIST_SUITE_RUNS", "runs")),
                help="runs folder (default: $MNIST_SUITE_RUNS or ./runs)",
            )
            p.add_argument("--index", type=int, default=None, help="run only this cell")
            p.add_argument("--force", action="store_true", help="re-run cells already recorded")
            _add_data_arguments(p)

    p = sub.add_parser("runs", help="list recorded runs with their state")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("MNIST_SUITE_RUNS", "runs")))
    p.add_argument("--job", default=None)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("predict", help="classify one test image with saved weights; save a PNG")
    p.add_argument("--weights", type=Path, required=True, help="a NumPy MLP's weights .npz")
    p.add_argument("--index", type=int, required=True, help="test image index (0..9999)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    _add_data_arguments(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="write tables and figures of recorded runs and benchmarks")
    p.add_argument("--runs", type=Path, default=Path(os.environ.get("MNIST_SUITE_RUNS", "runs")))
    p.add_argument(
        "--bench",
        type=Path,
        default=Path("bench/results"),
        help="folder of pytest-benchmark JSON files (default: bench/results, if present)",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="report folder (replaced)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    try:
        return args.func(args)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
