"""A warm worker: one process that runs the items its pool gives it, one after another.

The pool writes one item per line on the worker's standard input, as the JSON list of the
item's ``mnist-suite`` arguments (``run JOB --profile P --seed S --index I …``); the worker runs
it through the CLI's ``main``, exactly as a process of its own would, and answers the exit code
on its standard output, one line per item. Everything the item prints goes to standard error,
which the pool copies into the item's log. Imports, TensorFlow's start and MNIST are paid once
per worker, not once per item: a run's seeds fix everything it draws, so an item gives the same
figures in a worker as alone (a test holds this).

Only ``run`` items are served, each line at most :data:`~mnist_suite.limits.MAX_ITEM_LINE_BYTES`
(read in bounded chunks: a longer line is dropped as it arrives, never held); anything else is
refused with one ``error:`` line and exit 2. The item lines and the answers travel on private
descriptors: while an item runs, its standard input is ``/dev/null`` and its standard output is
the worker's standard error, so nothing an item does can read the next items or answer for one.

A stop signal ends the running item ``interrupted`` (its run's own handler) and then the
worker; an idle worker just ends. The worker also ends after an item that did not reach a
result, so the next item starts in a fresh process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

from mnist_suite import itemclock
from mnist_suite.errors import EXIT_FAILED, EXIT_RESULTS, EXIT_SIGINT, EXIT_USAGE
from mnist_suite.limits import MAX_ITEM_LINE_BYTES
from mnist_suite.text import printable

CHUNK_BYTES = 64 << 10


def read_lines(fd: int, limit: int = MAX_ITEM_LINE_BYTES) -> Iterator[bytes | None]:
    """The lines read from ``fd`` (without their newline); ``None`` for a line longer than
    ``limit`` bytes, which is read to its end and dropped chunk by chunk as it comes."""
    line = bytearray()
    dropping = False
    while chunk := os.read(fd, CHUNK_BYTES):
        while chunk:
            head, newline, chunk = chunk.partition(b"\n")
            if not dropping:
                line += head
                if len(line) > limit:
                    dropping = True
                    line.clear()  # what is too long is never held
            if newline:
                yield None if dropping else bytes(line)
                line.clear()
                dropping = False
    if dropping:
        yield None
    elif line:
        yield bytes(line)


def _argv(line: bytes | None) -> tuple[list[str] | None, str]:
    """The item's arguments, or None and why the line is refused."""
    if line is None:
        return None, f"an item line longer than {MAX_ITEM_LINE_BYTES} bytes; not run"
    try:
        argv = json.loads(line)
    except ValueError:  # also bytes that are not UTF-8
        argv = None
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        shown = printable(line[:200].decode(errors="replace"))
        return None, f"not an item (a JSON list of strings): {shown!r}; not run"
    if argv[0] != "run":
        # A worker runs items; any other command (a nested ``worker`` would read this worker's
        # next lines) is refused.
        return None, f"not a run item: {printable(argv[0][:100])!r}; not run"
    return argv, ""


def serve() -> int:
    """Run the items read from standard input; answer each one's code on standard output."""
    from mnist_suite.cli import main

    # Private descriptors (not inherited by subprocesses) carry the items and the answers; the
    # standard ones are left to the items: input from /dev/null, output to standard error.
    items = os.dup(sys.stdin.fileno())
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, sys.stdin.fileno())
    os.close(null)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    code = 0
    try:
        for line in read_lines(items):
            argv, why = _argv(line)
            itemclock.take()
            if argv is None:
                print(f"error: {why}", file=sys.stderr, flush=True)
                code = EXIT_USAGE
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
