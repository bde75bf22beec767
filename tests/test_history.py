"""``history JOB`` and the report's "Across commits" section over real tiny softmax runs made at
three commits of a scratch repository: ``base``, a harmless edit of softmax whose subject is
hostile HTML, and a tenth of softmax's learning rate (worse). The middle commit's runs are
rewritten, in their records, to name another machine: its clock is another series.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mnist_suite.history import SEVERAL
from mnist_suite.jobs import Job
from mnist_suite.report import build_report
from mnist_suite.runs import execute
from mnist_suite.verdicts import WORSE
from tests.test_ab import TINY, _git, commit, edit, make_repo
from tests.test_bisect import suite
from tests.test_report import FakeConfig

pytestmark = pytest.mark.slow

HOSTILE = "<script>alert(1)</script>"
ELSEWHERE = {"cpu": "Other Model 9000", "host": "elsewhere"}


def _rewrite(run: Path, change) -> None:
    """Change a run's config.json (its envelope) in place through ``change(config)``."""
    config = _config(run)
    change(config)
    (run / "config.json").write_text(json.dumps(config))


def _runs_at(runs: Path, sha: str | None = None) -> list[Path]:
    """The run folders of softmax (whose records name commit ``sha``, when given)."""
    folders = sorted(p.parent for p in (runs / "softmax").glob("*/config.json"))
    return [p for p in folders if sha in (None, _config(p)["commit_info"]["id"])]


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _elsewhere(config: dict) -> None:
    config["machine_info"]["cpu"] = ELSEWHERE["cpu"]
    config["machine_info"]["identity"]["host"] = ELSEWHERE["host"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, mnist) -> tuple[Path, dict[str, str]]:
    """The repository and its three commits (``base``, ``hostile``, ``lr``); three seeds of
    softmax at each in ``build/ab/runs``, the ``hostile`` commit's on another machine."""
    scratch = tmp_path_factory.mktemp("history")
    root = make_repo(scratch / "repo")
    runs = root / "build" / "ab" / "runs"
    shas = {"base": _git(root, "rev-parse", "HEAD")}
    edits = [
        ("hostile", f"softmax: {HOSTILE}",
         ("jobs/softmax.py", "must be in [0, {len(x)}] (0 = all)", "outside [0, {len(x)}]")),
        ("lr", "softmax: a tenth of the learning rate",
         ("jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.05")),
    ]  # fmt: skip
    for name, subject, change in edits:
        edit(root, *change)
        shas[name] = commit(root, subject)
    # Each commit's runs made by its own code in its own checkout, the three at once.
    started = []
    for name, sha in shas.items():
        checkout = root if name == "lr" else scratch / name
        if checkout != root:
            _git(root, "worktree", "add", "-q", "--detach", str(checkout), sha)
        started.append(suite(checkout, "run", "softmax", "--profile", "quick", "--seeds", "0-2",
                             *TINY, "--runs", str(runs), wait=False))  # fmt: skip
    for child in started:
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
    for run in _runs_at(runs, shas["hostile"]):
        _rewrite(run, _elsewhere)
    # One load for every run: the clocks of one machine are then comparable whatever else ran
    # on this machine meanwhile, and only the machines part them.
    for run in _runs_at(runs):
        _rewrite(run, lambda c: c["machine_info"].update(load_average=[0.5, 0.5, 0.5]))
    return root, shas


def _history(run_cli, *args: str) -> dict:
    code, out, err = run_cli("history", "softmax", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_history_parts_clocks_by_machine_and_keeps_one_series_of_accuracy(
    scratch, run_cli, monkeypatch, tmp_path
):
    root, shas = scratch
    base, hostile, lr = shas["base"], shas["hostile"], shas["lr"]
    monkeypatch.chdir(root)

    # The clock: two series; the other machine's point is judged against nothing, and the
    # last commit against the first (the point before it on its machine), never across.
    points = _history(run_cli, "--metric", "train_seconds")["points"]
    assert [p["commit"] for p in points] == [base, hostile, lr]
    here, there, again = points
    assert here["series"] == again["series"] != there["series"]
    inside = _config(_runs_at(root / "build" / "ab" / "runs", hostile)[0])["machine_info"]
    container = ", container" if inside["in_container"] else ""
    assert there["series"] == f"{ELSEWHERE['cpu']}, host {ELSEWHERE['host']}{container}"
    assert here["against_previous"] is None and there["against_previous"] is None
    assert again["against_previous"]["commit"] == base[:10]
    assert again["against_previous"]["verdict"] is not None
    code, table, err = run_cli("history", "softmax", "--metric", "train_seconds")
    assert code == 0, err
    assert "machine" in table.splitlines()[1] and there["series"] in table

    # Accuracy: one series, each point judged against the commit before it.
    points = _history(run_cli)["points"]
    assert [p["series"] for p in points] == [None] * 3
    assert [(p["against_previous"] or {}).get("commit") for p in points] == [
        None, base[:10], hostile[:10]
    ]  # fmt: skip
    assert points[2]["against_previous"]["verdict"] == WORSE

    # The last commit's runs spanning two machines: that point stands alone, said so.
    copy = tmp_path / "runs"
    shutil.copytree(root / "build" / "ab" / "runs", copy)
    seed0 = next(p for p in _runs_at(copy, lr) if _config(p)["seed"] == 0)
    _rewrite(seed0, lambda c: c["machine_info"]["identity"].update(host="a-third"))
    points = _history(run_cli, "--metric", "train_seconds", "--runs", str(copy))["points"]
    assert (points[2]["series"], points[2]["against_previous"]) == (SEVERAL, None)
    assert points[2]["note"] == "runs of 2 machines: not comparable"


def _sections(report: Path) -> dict[str, dict]:
    results = json.loads((report / "results.json").read_text())
    return {s["key"]: s for s in results["sections"]}


def test_report_draws_each_commit_with_its_interval_and_escapes_subjects(
    scratch, monkeypatch, tmp_path
):
    root, shas = scratch
    monkeypatch.chdir(root)
    report = tmp_path / "report"
    build_report(root / "build" / "ab" / "runs", None, report)
    section = _sections(report)["commits"]
    assert section["figures"] == ["figures/commits-softmax.png"]
    assert (report / "figures" / "commits-softmax.png").stat().st_size > 0
    (table,) = section["tables"]
    rows = table["rows"]
    assert [r["commit"] for r in rows] == [shas[k][:10] for k in ("base", "hostile", "lr")]
    assert rows[1]["subject"] == f"softmax: {HOSTILE}"
    assert [r["verdict"] for r in rows][2] == WORSE
    assert table["bold"] == [{"row": 2, "column": "verdict"}]
    page, markdown = (report / "index.html").read_text(), (report / "index.md").read_text()
    # Escaped (the page may break a cell's text after "/" with <wbr>), never a tag.
    assert "softmax: &lt;script&gt;alert(1)&lt;/script&gt;" in page.replace("<wbr>", "")
    assert "<script" not in page and "<script" not in markdown

    # Runs at one commit, and no compare folder in the checkout: nothing to draw, no section.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    one = tmp_path / "one" / "softmax"
    for run in _runs_at(root / "build" / "ab" / "runs", shas["lr"]):
        shutil.copytree(run, one / run.name)
    monkeypatch.chdir(clone)
    build_report(one.parent, None, tmp_path / "report-one")
    assert "commits" not in _sections(tmp_path / "report-one")


def _negative_mse(cfg, run):
    return {"test_mse": -1.0}


def test_a_job_whose_figures_do_not_add_up_is_a_note_beside_the_others(
    scratch, monkeypatch, tmp_path
):
    root, shas = scratch
    # A run whose records fit their schemas but whose MSE is negative: no summary takes it.
    job = Job("crafted", "a crafted job", FakeConfig, _negative_mse)
    made = execute(job, "", FakeConfig(), seed=0, profile="quick", out=tmp_path / "runs",
                        run_id="quick-s0")  # fmt: skip
    assert made.state == "done"
    _rewrite(made.path, lambda c: c.update(commit_info={"id": shas["lr"], "dirty": False}))
    monkeypatch.chdir(root)
    build_report(tmp_path / "runs", None, tmp_path / "report")
    section = _sections(tmp_path / "report")["commits"]
    assert section["figures"] == ["figures/commits-softmax.png"]
    assert [n.split(" (")[0] for n in section["notes"]] == ["crafted: no history"]
