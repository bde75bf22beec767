"""README and docs/ stay true: every command's flags exist, every relative link resolves, the
results table is the reference report's, and the README is short enough to read."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _code_lines(path: Path) -> list[str]:
    """Lines of the fenced code blocks, comments cut, continuation lines joined."""
    lines, inside, buffer = [], False, ""
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        line = buffer + line
        if line.endswith("\\"):
            buffer = line[:-1] + " "
            continue
        buffer = ""
        lines.append(line.split(" #")[0].strip())
    return lines


def _commands(tool: str) -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        for line in _code_lines(path):
            for part in re.split(r"&&|\|(?!\|)|;", line):
                part = part.split(" > ")[0].strip()  # output redirection is the shell's
                if part == tool or part.startswith(tool + " "):
                    found.append((f"{path.name}: {part}", shlex.split(part, comments=True)[1:]))
    return found


@pytest.mark.parametrize(("where", "argv"), _commands("mnist-suite"), ids=lambda v: str(v)[:60])
def test_every_documented_command_parses(where, argv):
    from mnist_suite.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0, f"{where}: not accepted by the CLI"


def test_every_documented_nox_session_exists():
    listed = subprocess.run(
        [sys.executable, "-c", "import nox, sys; sys.argv=['nox','-l']; nox.main()"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if listed.returncode != 0:  # nox not importable here: read the noxfile instead
        sessions = set(re.findall(r"^def (\w+)\(session", (ROOT / "noxfile.py").read_text(), re.M))
    else:
        sessions = set(re.findall(r"^[*-] (\w+)", listed.stdout, re.M))
    used = {w[w.index("-s") + 1] for _, w in _commands("nox") if "-s" in w}
    assert used and used <= sessions, used - sessions


def test_every_relative_link_resolves():
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_readme_is_short_and_speaks_of_the_project_as_it_is():
    text = (ROOT / "README.md").read_text()
    assert len(text.split()) <= 1500
    for word in ("last round", "issue ", "round one", "previous", "was ", "were "):
        assert word not in text.lower(), word
    assert "nox -s suite" in text and "nox -s tests" in text and "pip install ." in text


def test_results_tables_are_generated_from_the_reference_report(shipped):
    """As committed: `nox -s suite` rewrites reports/ and `nox -s readme` the tables."""
    sys.path.insert(0, str(ROOT))
    from mnist_suite.report.headline import markdown_table
    from tools.readme import BEGIN, END

    table = markdown_table(json.loads(shipped("reports/results.json").read_text()))
    for path in (shipped("README.md"), shipped("docs/results.md")):
        text = path.read_text()
        assert text.split(BEGIN)[1].split(END)[0].strip() == table.strip(), path


def test_docs_state_what_the_code_does():
    """The facts the docs state that the code can check: the results schema version, where
    sgd-grid chooses its cell, the benchmark ratio definition."""
    from mnist_suite import benchcompare
    from mnist_suite.jobs import all_jobs
    from mnist_suite.report import SCHEMA_VERSION

    design = (ROOT / "docs" / "design.md").read_text()
    assert f"`reports/results.json` (`schema_version` {SCHEMA_VERSION})" in design
    jobs = (ROOT / "docs" / "jobs.md").read_text()
    assert "picked on the test set" not in jobs and "chosen on dev" in jobs
    assert all_jobs()["sgd-grid"].resolve("full").n_dev > 0
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    assert f"ratio definition {benchcompare.DEFINITION}" in benchmarks


def test_design_layout_names_every_module_of_the_package():
    layout = (ROOT / "docs" / "design.md").read_text().split("## Layout")[1].split("\n## ")[0]
    listed = set(re.findall(r"^\| `(mnist_suite/[^`]+)` \|", layout, re.M))
    files = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "mnist_suite").rglob("*")
        if p.is_file() and p.suffix in (".py", ".json")
    }
    assert files - listed == set(), "modules the layout table does not name"
    assert listed - files == set(), "rows of the layout table naming no module"


def test_errors_and_readers_sit_below_their_users():
    """A shared name lives below both users: no circle through the A/B modules or files/limits
    (tools/import_circles.py lists every circle)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import import_circles
    finally:
        sys.path.remove(str(ROOT / "tools"))
    graph = import_circles.edges(import_circles.modules(ROOT))
    for group in import_circles.groups(graph):
        assert not {"mnist_suite.ab", "mnist_suite.files"} & set(group), group


@pytest.mark.slow
def test_the_predict_example_names_the_digit_it_shows():
    """README's ``predict --index N --out <digit>.png``: test image N is that digit."""
    from mnist_suite.data import load_mnist

    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    found = re.findall(
        r"predict .*--index (\d+) --out (\w+)\.png", (ROOT / "README.md").read_text()
    )
    assert found
    y_test = load_mnist().y_test
    for index, name in found:
        assert digits[int(y_test[int(index)])] == name


class _Session:
    """What nox's session gives the suite session: its arguments, and a record of what it ran
    and asked for next (nothing runs)."""

    def __init__(self, *posargs: str):
        self.posargs = list(posargs)
        self.ran: list[tuple] = []
        self.notified: list[tuple[str, list[str]]] = []
        self.warnings: list[str] = []

    def run(self, *args, **kwargs):
        self.ran.append(args)
        return "engine docker"

    def notify(self, name: str, posargs: list[str]) -> None:
        self.notified.append((name, list(posargs)))

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def test_nox_suite_local_builds_no_image_and_trains_locally(monkeypatch):
    pytest.importorskip("nox")
    monkeypatch.syspath_prepend(str(ROOT))
    import noxfile

    local = _Session("--local", "--profile", "quick")
    noxfile.suite(local)
    names = [name for name, _ in local.notified]
    assert "image" not in names and "base_image" not in names and local.ran == []
    train = dict(local.notified)["train"]
    assert train[0] == "--local" and train.count("--local") == 1 and "quick" in train
    assert local.warnings == []  # chosen, not a fallback: no "no container engine" warning

    found = _Session("--profile", "quick")  # an engine found: the image is built first
    noxfile.suite(found)
    assert found.ran and "image" in dict(found.notified)
    assert "--local" not in dict(found.notified)["train"]
