"""A warm worker: one process that runs the items its pool gives it, one after another.

The pool writes one item per line on the worker's standard input, as the JSON list of the
item's ``mnist-suite`` arguments (``run JOB --profile P --seed S --index I …``); the worker runs
it through the CLI's ``main``, exactly as a process of its own would, and answers the exit code
on its standard output, one line per item. Everything the item prints goes to standard error,
which the pool copies into the item's log. Imports, TensorFlow's start and MNIST are paid once
per worker, not once per item: a run's seeds fix everything it draws, so an item gives the same
figures in a worker as alone (a test holds this).

A stop signal ends the running item ``interrupted`` (its run's own handler) and then the
worker; an idle worker just ends. The worker also ends after an item that did not reach a
result, so the next item starts in a fresh process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable

from mnist_suite import itemclock
from mnist_suite.errors import EXIT_FAILED, EXIT_RESULTS, EXIT_SIGINT


def _argv(line: str) -> list[str] | None:
    try:
        argv = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
    return argv if ok else None


def serve(lines: Iterable[str] | None = None) -> int:
    """Run the items read from ``lines`` (default: standard input); answer each one's code."""
    from mnist_suite.cli import main

    # Standard output carries the answers only: what items print goes to standard error.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    code = 0
    try:
        for line in sys.stdin if lines is None else lines:
            argv = _argv(line)
            itemclock.take()
            if argv is None:
                print(f"error: not an item: {line[:200]!r}", file=sys.stderr, flush=True)
                code = EXIT_FAILED
            else:
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse refused the arguments
                    code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
            sys.stdout.flush()
            sys.stderr.flush()
            answers.write(f"{code}\n")
            if code not in EXIT_RESULTS:
                return code
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except BrokenPipeError:  # the pool is gone
        return EXIT_FAILED
    return 0
