"""Every command's arguments, declared once: the parser of ``mnist-suite``.

Options a library dataclass declares (:func:`mnist_suite.options.option`) are offered from its
fields (:func:`~mnist_suite.options.add_arguments`); the rest are declared here.
``args.command`` names the command; :mod:`mnist_suite.cli` runs it.
"""

from __future__ import annotations

import argparse
import sys

from mnist_suite import batch, defaults
from mnist_suite.options import add_arguments, path

DESCRIPTION = (
    "`mnist-suite` / `python -m mnist_suite`: one entry point for every job, here or in a "
    "container."
)

EPILOG = f"""\
exit codes:
  0    success (in a batch, a diverged run is a result; bisect: no commit is worse)
  1    a run failed, compare --fail-on found a regression, bisect found the first worse
       commit, or the machine failed (full disk, I/O error, read-only output folder)
  2    bad usage, configuration, path or data (one line on stderr, nothing run)
  3    a single run diverged (non-finite loss)
  4    bisect could not judge a step (too few seeds, a diverged side): no answer
  130  interrupted by Ctrl-C (143: SIGTERM, 129: SIGHUP to a train pool); the running
       items end 'interrupted'

environment:
{defaults.variables_help()}docs: README.md and docs/ in the source tree.
"""


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


def _add_until_decided(p) -> None:
    """compare's and bisect's sequential seeds (:mod:`mnist_suite.sequential`)."""
    from mnist_suite.sequential import DEFAULT_MAX_SEEDS

    p.add_argument("--until-decided", action="store_true", help="add seeds at looks fixed "
                   "in advance (--seeds, then x1.5 each) until every row is decided, each look "
                   "judged at a Bonferroni share of the confidence (docs/results.md)")  # fmt: skip
    p.add_argument("--max-seeds", type=int, default=None, metavar="N", help="with --until-"
                   f"decided: the last look's seeds (default {DEFAULT_MAX_SEEDS})")  # fmt: skip


def _add_revision_runs(p, jobs: str) -> None:
    """What ``compare`` of two revisions and ``bisect`` run: the same jobs, profile, seeds and
    overrides on each side, in one runs folder."""
    p.add_argument("--jobs", nargs="+", default=[], metavar="JOB", help=jobs)
    p.add_argument("--profile", default="quick", choices=defaults.PROFILES, help="default: quick")
    p.add_argument("--seeds", default="0-3", help="paired seeds, as in run (default: 0-3)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for both sides (repeatable)")  # fmt: skip
    p.add_argument("--runs", type=path, default=None, help="both sides' runs folder (default: "
                   "build/ab/runs)")  # fmt: skip
    p.add_argument("--containers", action="store_true", help="run each side in images built "
                   "from its own revision, tagged mnist-suite:FLAVOUR-SHA12")  # fmt: skip


def _command(sub, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser; ``args.command`` names the command (:data:`mnist_suite.cli.COMMANDS`)."""
    return sub.add_parser(name, help=help, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from mnist_suite import __version__
    from mnist_suite.compare import CompareOptions
    from mnist_suite.launch import LaunchOptions
    from mnist_suite.launch.container import DEFAULT_MEMORY, DEFAULT_PIDS
    from mnist_suite.launch.kubernetes import KubernetesOptions
    from mnist_suite.launch.slurm import SlurmOptions

    parser = argparse.ArgumentParser(
        prog="mnist-suite",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log data sources tried")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_data(_command(sub, "data", "fetch and verify MNIST; print the source and cache path"))
    p = _command(sub, "list", "list the jobs, one line each")
    p.add_argument(
        "--code",
        action="store_true",
        help="print each job's code fingerprint (what its runs record) instead",
    )
    p.add_argument("--json", action="store_true", help="the jobs, their fields, defaults and "
                   "code fingerprints as JSON")  # fmt: skip
    p = _command(sub, "cells", "list a job's cells with their index")
    p.add_argument("job")
    add_arguments(p, batch.Selection, only=("profile", "overrides"))

    p = _command(sub, "run", "run work items here, one after another (all, or item "
                 "--index I of the plan)", description="Run the plan's items in this process. "
                 "--index I (or $MNIST_SUITE_INDEX, $JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID) "
                 "runs only item I; for one job and one seed item I is the job's cell "
                 "I.")  # fmt: skip
    _add_selection(p, all_by_default=False)
    _add_runs(p, old_out=True)
    p.add_argument("--index", type=int, default=None, help="run only this item of the plan")
    add_arguments(p, LaunchOptions, skip=("workers", "threads"))
    _add_data(p)

    p = _command(sub, "plan", "print the work plan (job x cell x seed), its status or save it")
    _add_selection(p, all_by_default=True)
    _add_runs(p)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--save", type=path, default=None, help="write the plan document to this file")
    p.add_argument("--status", action="store_true", help="each item's state in the runs folder")
    p.add_argument(
        "--pending", action="store_true", help="the indexes to run again, in each engine's form"
    )

    p = _command(sub, "train", "run the plan in a process pool (--workers N), "
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

    p = _command(sub, "k8s", "print Kubernetes Indexed Jobs (one per image) for the plan")
    _add_selection(p, all_by_default=True)
    add_arguments(p, KubernetesOptions)

    p = _command(sub, "slurm", "print a Slurm array job (sbatch script) for the plan")
    _add_selection(p, all_by_default=True)
    _add_runs(p)
    add_arguments(p, SlurmOptions)

    p = _command(sub, "runs", "list recorded runs with their state")
    _add_runs(p, old_out=True)
    p.add_argument("--job", default=None)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.add_argument("--summary", action="store_true", help="per job/cell/profile: n, mean ± 95%% "
                   "CI, the original's figure, time to target (with --json: a baseline document "
                   "for `compare`)")  # fmt: skip
    _add_all_code(p)

    p = _command(sub, "compare", "BASE vs NEW (runs folders, results.json, benchmark "
                 "results, or two git revisions): better, worse, equivalent or inconclusive, "
                 "beyond noise")  # fmt: skip
    p.add_argument("base", help="runs folder, results.json/baseline, benchmark JSON; or a git "
                   "revision")  # fmt: skip
    p.add_argument("new", help="the same kind as BASE")
    ab = p.add_argument_group("two git revisions", "each revision is checked out once under "
                              "build/ab/ and runs its own code; both run the same jobs, profile, "
                              "seeds and overrides, BASE's item then NEW's")  # fmt: skip
    _add_revision_runs(ab, "the jobs to run")
    _add_until_decided(ab)
    add_arguments(p, CompareOptions)

    p = _command(sub, "bisect", "the first commit between GOOD and BAD where a job's figure "
                 "got worse than at GOOD (compare's verdict; commits that leave the job's code "
                 "unchanged are skipped, never run)")  # fmt: skip
    p.add_argument("good", help="a git revision where the figure is as it should be")
    p.add_argument("bad", help="a later revision, GOOD on its first-parent line")
    _add_revision_runs(p, "the job to follow (one)")
    p.add_argument("--metric", default=None, help="the figure judged (default: the job's "
                   "headline, e.g. test_accuracy)")  # fmt: skip
    _add_until_decided(p)
    add_arguments(p, CompareOptions, only=("min_effect", "margin", "confidence"))

    p = _command(sub, "history", "a job's figure at each commit whose runs exist, oldest first, "
                 "each judged against the one before in its series (train_seconds: one series "
                 "per machine)")  # fmt: skip
    p.add_argument("job")
    p.add_argument("--metric", default=None, help="default: the job's headline figure")
    p.add_argument("--since", default=None, metavar="REV", help="only commits from REV on")
    p.add_argument("--runs", type=path, default=None, help="runs folder (default: build/ab/runs, "
                   "where compare and bisect keep theirs)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    add_arguments(p, CompareOptions, only=("min_effect", "margin", "confidence"))

    p = _command(sub, "predict", "classify one test image with saved weights; save "
                 "a PNG", description="Classify one test image with the weights a classifier run "
                 "saved (artifacts/weights.npz of softmax, softmax-original, mlp, mlp-fast, "
                 "mlp-original; the TensorFlow and autoencoder jobs save no classifier "
                 "weights).")  # fmt: skip
    p.add_argument("--weights", type=path, required=True, help="a run's artifacts/weights.npz")
    p.add_argument("--index", type=int, required=True, help="test image index (0..9999)")
    p.add_argument("--out", type=path, required=True, help="the PNG to write")
    _add_data(p)

    p = _command(sub, "report", "write tables and figures of recorded runs and benchmarks")
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
    p.add_argument("--force", action="store_true", help="replace a report built from more "
                   "finished runs (refused without it)")  # fmt: skip
    _add_all_code(p)
    p.add_argument("--json", action="store_true", help="print the report's files, its runs "
                   "by state and its sections' notes as JSON")  # fmt: skip
    _command(sub, "worker", "run the `run` items given on standard input, one JSON argv per "
             "line (at most 1 MiB), answering each exit code (a pool's warm worker)")  # fmt: skip
    return parser


# Arguments whose value is a list (nargs="*" or action="append"): [] is their default.
LIST_ARGUMENTS = {"jobs", "overrides", "sbatch", "node_selector", "tolerations", "labels",
                  "annotations", "image_digests", "fail_metric", "min_effect",
                  "margin"}  # fmt: skip


def check_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse an option given no value: argparse turns a value of "--" (``--data=--``) into an
    empty list (or appends one)."""
    for key, value in vars(args).items():
        if (value == [] and key not in LIST_ARGUMENTS) or (isinstance(value, list) and [] in value):
            parser.error(f"--{key.replace('_', '-')}: expected a value")
