"""Write the results table of README.md and docs/results.md from the reference report.

`python tools/readme.py` (or `nox -s readme`) replaces the text between the markers
``<!-- results:begin -->`` and ``<!-- results:end -->`` with the first table of
``reports/results.json``; `--check` exits 1 if a file differs (what the tests run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_suite.report.headline import markdown_table  # noqa: E402

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
FILES = (ROOT / "README.md", ROOT / "docs" / "results.md")


def with_table(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``."""
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not (sep and sep2):
        raise ValueError(f"the markers {BEGIN} … {END} are missing")
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "results.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    table = markdown_table(json.loads(args.report.read_text()))
    stale = []
    for path in FILES:
        old = path.read_text()
        new = with_table(old, table)
        if new != old:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"out of date with {args.report}: {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
