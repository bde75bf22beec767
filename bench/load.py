"""Run a command while N busy processes compete for the CPU: the "loaded machine" benchmark.

    python bench/load.py 2 -- pytest bench/ --benchmark-only --quick

Each competitor is a plain ``while True: pass`` Python process; they are started before the
command, stopped (by their own process ids) after it, and the command's exit code is returned.
``nox -s bench -- --quick --load 2`` wraps the benchmarks this way.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print("error: usage: load.py N -- COMMAND [ARGS...] (N busy processes)", file=sys.stderr)
        return 2
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(int(argv[0]))
    ]
    env = os.environ | {"MNIST_SUITE_BENCH_LOAD": argv[0]}
    try:
        return subprocess.run(argv[2:], env=env).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        for proc in busy:
            proc.terminate()
        for proc in busy:
            proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
