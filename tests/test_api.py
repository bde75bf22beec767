"""The Python API (docs/api.md): its examples run as doctests on real runs, the package
imports cheaply, and each function returns what its command prints."""

from __future__ import annotations

import doctest
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mnist_suite
from mnist_suite.cli import main
from mnist_suite.errors import ConfigError
from mnist_suite.files import dumps
from tests.test_compare import fake_runs

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"


def blocks(language: str) -> list[tuple[int, str]]:
    """(line number, text) of each fenced ``language`` block of docs/api.md."""
    found = re.finditer(rf"^```{language}\n(.*?)^```$", DOC.read_text(), re.M | re.S)
    return [(DOC.read_text()[: m.start()].count("\n") + 2, m.group(1)) for m in found]


@pytest.mark.slow
def test_the_documented_examples_run(tmp_path, monkeypatch, run_cli):
    """The doc's commands make its runs folders here; then every example, in order, as a
    doctest sharing one namespace."""
    monkeypatch.chdir(tmp_path)
    commands = [line for _, text in blocks("bash") for line in text.splitlines()]
    made = [shlex.split(line)[1:] for line in commands if line.startswith("mnist-suite run ")]
    assert len(made) == 2
    for argv in made:
        code, _, err = run_cli(*argv)
        assert code == 0, err
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(verbose=False)
    globs: dict = {}
    said: list[str] = []
    examples = 0
    for line, text in blocks("python"):
        test = parser.get_doctest(text, globs, f"api.md line {line}", str(DOC), line)
        examples += len(test.examples)
        runner.run(test, out=said.append, clear_globs=False)
        globs = test.globs  # a DocTest runs in a copy: the next block goes on from this one
    result = runner.summarize(verbose=False)
    assert examples >= 20 and result.attempted == examples
    assert result.failed == 0, "".join(said)


def test_import_is_cheap_and_the_api_loads_what_it_needs_when_used():
    probe = (
        "import sys, mnist_suite\n"
        "heavy = ('numpy', 'pandas', 'tensorflow', 'scipy', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "mnist_suite.load_runs, mnist_suite.summaries, mnist_suite.runs_dataframe\n"
        "mnist_suite.compare\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    bare, used = found.stdout.splitlines()
    assert bare == "[]"
    assert "pandas" not in used and "tensorflow" not in used


def test_the_package_names_exactly_the_api():
    import mnist_suite.compare as module

    assert sorted(mnist_suite.__all__) == [
        "__version__", "compare", "load_runs", "runs_dataframe", "summaries",
    ]  # fmt: skip
    assert mnist_suite.compare is module and callable(mnist_suite.compare)
    assert all(callable(getattr(mnist_suite, name)) for name in mnist_suite.__all__[1:])
    with pytest.raises(AttributeError):
        mnist_suite.load_run  # noqa: B018  (a typo is an AttributeError, not a lookup)


@pytest.fixture
def sides(tmp_path) -> tuple[Path, Path]:
    base, new = tmp_path / "base", tmp_path / "new"
    # Jobs this suite does not have: their runs are read without a code check.
    fake_runs(base, "slower", [0.900, 0.902, 0.898, 0.901])
    fake_runs(new, "slower", [0.880, 0.883, 0.879, 0.881], lr=0.05)
    fake_runs(base, "same", [1.00, 1.01, 0.99], metric="test_mse")
    fake_runs(new, "same", [1.001, 1.008, 0.992], metric="test_mse")
    damaged = base / "slower" / "quick-s9-damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{not json")
    return base, new


def cli(capsys, *argv: str) -> str:
    code = main([*map(str, argv)])
    out, _ = capsys.readouterr()
    assert code == 0
    return out


def test_each_function_returns_what_its_command_prints(sides, capsys):
    base, new = sides
    listed = json.loads(cli(capsys, "runs", "--runs", base, "--json", "--all-code"))["runs"]
    records = mnist_suite.load_runs(base, all_code=True)
    assert [r.run_id for r in records] == [r["run_id"] for r in listed]
    assert [r.state for r in records] == [r["state"] for r in listed]
    (damaged,) = [r for r in records if r.state == "corrupt"]
    assert damaged.problem.startswith("config.json: not JSON")

    summary = json.loads(cli(capsys, "runs", "--runs", base, "--summary", "--json"))
    assert json.loads(dumps(mnist_suite.summaries(base))) == summary["summaries"]

    printed = json.loads(cli(capsys, "compare", base, new, "--json"))["rows"]
    rows = mnist_suite.compare(base, new)
    assert json.loads(dumps([r.as_dict() for r in rows])) == printed
    by_job = {r.job: r for r in rows}
    assert by_job["slower"].verdict == "worse" and by_job["same"].verdict == "equivalent"
    assert by_job["same"].margin == pytest.approx(0.03) and by_job["same"].seeds_to_decide is None
    assert by_job["slower"].config_changes == "lr: 0.1 -> 0.05"
    assert by_job["slower"].base["n"] == 4 and by_job["slower"].pairs == 4
    relaxed = mnist_suite.compare(base, new, min_effect={"test_accuracy": "50%"})
    assert {r.job: r.verdict for r in relaxed}["slower"] == "equivalent"  # within ±45 points
    strict = mnist_suite.compare(base, new, margin={"test_mse": 0.001})
    (same,) = [r for r in strict if r.job == "same"]
    assert same.verdict == "inconclusive" and same.seeds_to_decide > 3


def test_the_dataframe_has_a_row_per_run_and_a_column_per_field(sides):
    frame = mnist_suite.runs_dataframe(sides[0], all_code=True)
    assert len(frame) == 8 and list(frame["state"]).count("corrupt") == 1
    assert list(frame.columns[:11]) == [
        "job", "cell", "profile", "seed", "state", "fingerprint", "commit", "run_id",
        "started_at", "finished_at", "problem",
    ]  # fmt: skip
    assert {"config.lr", "metrics.test_accuracy", "metrics.test_mse"} <= set(frame.columns)
    slower = frame[(frame["job"] == "slower") & (frame["state"] == "done")]
    assert slower["seed"].tolist() == [0, 1, 2, 3] and str(frame["seed"].dtype) == "Int64"
    assert slower["metrics.test_accuracy"].mean() == pytest.approx(0.90025, abs=1e-12)
    # Each job's newest code by default; a damaged run (its code unknown) is always shown.
    assert list(mnist_suite.runs_dataframe(sides[0])["state"]).count("corrupt") == 1


def test_the_dataframe_without_pandas_names_the_extra(sides, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(ImportError) as caught:
        mnist_suite.runs_dataframe(sides[0])
    assert str(caught.value) == "runs_dataframe needs pandas: pip install 'mnist-suite[pandas]'"
    assert caught.value.__suppress_context__


def test_pandas_is_an_extra_the_tests_install_and_no_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert extras["pandas"] == ["pandas>=2.1"] and "pandas>=2.1" in extras["dev"]
    assert not [d for d in project["dependencies"] if d.startswith("pandas")]


def test_a_path_with_nothing_to_read_is_a_config_error(sides, tmp_path):
    for call in (mnist_suite.load_runs, mnist_suite.summaries, mnist_suite.runs_dataframe):
        with pytest.raises(ConfigError, match="no such folder"):
            call(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no such file or folder"):
        mnist_suite.compare(sides[0], tmp_path / "missing")
    other = tmp_path / "other"
    fake_runs(other, "mlp", [0.9, 0.91])
    with pytest.raises(ConfigError, match="share no job"):
        mnist_suite.compare(sides[0], other)


def test_failing_gives_the_lines_the_command_fails_with(sides, capsys):
    from mnist_suite.api import failing

    base, new = sides
    rows = mnist_suite.compare(base, new)
    assert failing(rows) == []  # nothing asked, nothing fails
    assert failing(rows, require="equivalent") == ["slower quick test_accuracy: worse"]
    assert failing(rows, require="equivalent", fail_metric=("test_mse",)) == []
    code = main(["compare", str(base), str(new), "--require", "equivalent"])
    assert code == 1
    assert capsys.readouterr().err == "failing: slower quick test_accuracy: worse\n"
    with pytest.raises(ConfigError, match=r"^require 'same': expected 'equivalent' or None$"):
        failing(rows, require="same")
    with pytest.raises(ConfigError, match="fail metric 'accuracy'"):
        failing(rows, fail_on="worse", fail_metric=("accuracy",))
