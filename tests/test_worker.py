"""The warm worker's protocol (``mnist-suite worker``): one ``run`` item per line, each line
capped, one answer per item on standard output and nothing else there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mnist_suite.launch.worker import read_lines
from mnist_suite.limits import MAX_ITEM_LINE_BYTES

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _worker(argv: list[str] | None = None) -> subprocess.Popen:
    argv = argv or [sys.executable, "-m", "mnist_suite", "worker"]
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )


def _feed(proc: subprocess.Popen, *chunks: bytes) -> tuple[int, str, str, int]:
    """Write ``chunks`` to the worker, close its input; (exit code, stdout, stderr, peak RSS in
    KiB) once it has ended. Its output is small and read after it ends: nothing to deadlock."""
    for chunk in chunks:
        proc.stdin.write(chunk)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode, out, err, usage.ru_maxrss


def test_lines_are_read_in_bounded_chunks_and_a_long_one_is_dropped():
    read, write = os.pipe()
    with os.fdopen(write, "wb") as f:
        f.write(b"a" * 10 + b"\n" + b"b" * 11 + b"\n\n" + b"c" * 30 + b"\ntail")
    with os.fdopen(read, "rb") as f:
        assert list(read_lines(f.fileno(), limit=10)) == [b"a" * 10, None, b"", None, b"tail"]


def test_a_line_over_the_cap_is_refused_without_being_held(tmp_path):
    """A 100 MB line: one line, exit 2, and the worker's peak memory that of a worker given a
    one-word line (a line held whole would add at least its 100 MB)."""
    code, out, err, small = _feed(_worker(), b'["worker"]\n')
    assert code == 2
    megabyte = b"x" * (1 << 20)
    code, out, err, peak = _feed(_worker(), *[megabyte] * 100, b"\n")
    assert (code, out) == (2, "2\n")
    refusal = f"error: an item line longer than {MAX_ITEM_LINE_BYTES} bytes; not run"
    assert err.splitlines() == [refusal]
    assert peak - small < 16 << 10, (peak, small)  # KiB: the cap (1 MiB) and a read chunk, no more
    # A line of exactly the cap is read whole (and refused as not JSON, in one line).
    code, out, err, _ = _feed(_worker(), b"y" * MAX_ITEM_LINE_BYTES + b"\n")
    assert (code, out) == (2, "2\n") and err.startswith("error: not an item (a JSON list")
    assert len(err.splitlines()) == 1


def test_only_run_items_are_served(tmp_path):
    """A nested ``worker`` (which would read the next lines and answer on standard error) and
    any other command are refused in one line; nothing runs after the refusal."""
    runs = tmp_path / "runs"
    item = ["run", "softmax", "--profile", "quick", "--seed", "0", "--runs", str(runs)]
    for refused, shown in ((["worker"], "'worker'"), (["plan", "softmax"], "'plan'")):
        lines = [json.dumps(refused).encode(), json.dumps(item).encode()]
        code, out, err, _ = _feed(_worker(), b"\n".join(lines) + b"\n")
        assert (code, out) == (2, "2\n"), err
        assert err.splitlines() == [f"error: not a run item: {shown}; not run"]
        assert not runs.exists()


# An item that tries to read the worker's next lines and to answer for itself: the worker's
# own `serve`, with the CLI's `main` replaced by such an item.
GREEDY_ITEM = """
import sys
from mnist_suite import cli
from mnist_suite.launch.worker import serve
def main(argv):
    print(f"read {sys.stdin.read()!r}", file=sys.stderr)
    print("0", flush=True)  # a forged answer
    return 3
cli.main = main
sys.exit(serve())
"""


def test_an_item_can_neither_read_the_next_items_nor_answer():
    lines = b'["run", "a"]\n["run", "b"]\n'
    code, out, err, _ = _feed(_worker([sys.executable, "-c", GREEDY_ITEM]), lines)
    assert code == 0 and out == "3\n3\n"  # both items served; the answers are the worker's
    assert err.splitlines() == ["read ''", "0", "read ''", "0"]  # its output went to the log
    # The real command line: `run --help` prints to standard output, which is the log.
    code, out, err, _ = _feed(_worker(), b'["run", "--help"]\n')
    assert (code, out) == (0, "0\n") and "usage: mnist-suite run" in err
