"""``compare --until-decided``: the look schedule, the confidence of each look, rows frozen once
decided, the error rates under optional stopping (simulated, through compare's own decision
code), and one run on two revisions of a scratch repository."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

from mnist_suite import compare
from mnist_suite.cli import main
from mnist_suite.errors import ConfigError
from mnist_suite.sequential import (
    judge_look,
    look_confidence,
    progress,
    schedule,
    seeds_for,
    undecided,
)
from tests.test_ab import TINY, commit, edit, make_repo, runs_made, state_of
from tests.test_ab import compare as compare_revisions
from tests.test_compare import fake_runs
from tools.calibrate import wilson


def test_the_schedule_is_fixed_before_any_run():
    assert schedule(4, 12) == [4, 6, 9, 12]  # K = 4
    assert schedule(1, 12) == [1, 2, 3, 5, 8, 12]
    assert schedule(2, 3) == [2, 3] and schedule(4, 4) == [4]
    with pytest.raises(ConfigError, match=r"^--max-seeds 3: expected from the 4 seeds of"):
        schedule(4, 3)
    assert look_confidence(0.95, 4) == pytest.approx(0.9875, abs=1e-15)
    assert look_confidence(0.99, 1) == 0.99
    assert seeds_for((0, 1, 2, 3), 6) == (0, 1, 2, 3, 4, 5)
    assert seeds_for((0, 5), 4) == (0, 5, 6, 7) and seeds_for((3, 1), 2) == (3, 1)


def _side(label: str, values: dict[str, list[float]]) -> compare.Side:
    side = compare.Side(label, "runs")
    for job, v in values.items():
        x = np.asarray(v)
        stat = compare.Stat(len(x), float(x.mean()), float(x.std(ddof=1)), dict(enumerate(v)))
        side.stats[(job, "", "quick", "test_accuracy")] = stat
    return side


def _look(base, new, n, rules, confidence, frozen):
    """One look of a simulated table at ``n`` seeds: every job at ``n``."""
    b = _side("base", {job: list(v[:n]) for job, v in base.items()})
    w = _side("new", {job: list(v[:n]) for job, v in new.items()})
    return judge_look(b, w, rules, confidence, frozen, {(job, ""): n for job in base})


def test_a_row_decided_at_a_look_stays_as_it_was_decided():
    base = {"up": [0.90, 0.91, 0.92, 0.93, 0.90, 0.91], "flat": [0.90, 0.91, 0.92, 0.93, 0.9, 0.91]}
    new = {
        # +2 points on the first four seeds; the next two lose 5 and 6 points.
        "up": [0.92, 0.931, 0.939, 0.95, 0.85, 0.85],
        "flat": [0.903, 0.907, 0.923, 0.928, 0.901, 0.912],
    }
    confidence, frozen = look_confidence(0.95, 2), {}
    first = {r["job"]: r for r in _look(base, new, 4, compare.RULES, confidence, frozen)}
    assert first["up"]["verdict"] == "better" and first["up"]["seeds"] == 4
    assert first["flat"]["verdict"] == "inconclusive" and first["flat"]["seeds"] == 4
    assert [r["job"] for r in undecided(list(first.values()))] == ["flat"]
    # Judged afresh at six seeds "up" would read otherwise; frozen, it reads as it was decided.
    afresh = {r["job"]: r for r in _look(base, new, 6, compare.RULES, confidence, {})}
    assert afresh["up"]["verdict"] != "better"
    second = {r["job"]: r for r in _look(base, new, 6, compare.RULES, confidence, frozen)}
    assert second["up"] == first["up"]
    assert second["flat"]["seeds"] == 6 and second["flat"]["diff"] != first["flat"]["diff"]
    line = progress(2, 2, 6, undecided(list(second.values())))
    assert line.startswith("look 2 of 2, 6 seeds: ")
    # The table says how many seeds each row got.
    _, cells = compare.text_rows(list(second.values()), confidence)
    notes = {c[0]: c[-1] for c in cells}
    assert notes["up"] == "decided at 4 seeds"
    assert notes["flat"].endswith("at 6 seeds")


# A row whose minimum effect is zero: better or worse by significance alone, never equivalent
# (a zero margin): the test of the error rate optional stopping raises.
SIGNIFICANCE_ONLY = compare.RULES | {"test_accuracy": compare.Rule(True, absolute=0.0)}


def _simulate(tables: int, effect: float, rules: dict, per_look: float, seed: int) -> dict:
    """How often each verdict ends ``tables`` one-row tables run look by look over the default
    schedule (4, 6, 9, 12 seeds), stopping once decided: each seed's difference is ``effect``
    plus normal noise (sd 0.1 pt), each look judged at ``per_look``."""
    rng = np.random.default_rng(seed)
    sizes, ended = schedule(4, 12), {}
    for _ in range(tables):
        base = 0.9 + 0.01 * rng.standard_normal(12)
        new = base + effect + 0.001 * rng.standard_normal(12)
        frozen: dict = {}
        for n in sizes:
            rows = _look({"net": base}, {"net": new}, n, rules, per_look, frozen)
            if not undecided(rows):
                break
        ended[rows[0]["verdict"]] = ended.get(rows[0]["verdict"], 0) + 1
    return ended


def test_optional_stopping_keeps_false_better_or_worse_within_the_rate():
    # No change at all: a better or worse is a false alarm. Stopping at the first look that
    # decides raises the rate four looks give; each judged at 1 - 5%/4 keeps it at most 5%.
    ended = _simulate(2000, 0.0, SIGNIFICANCE_ONLY, look_confidence(0.95, 4), seed=1)
    alarms = ended.get("better", 0) + ended.get("worse", 0)
    assert set(ended) <= {"better", "worse", "inconclusive"}
    assert wilson(alarms, 2000)[1] <= 0.05, ended  # the 95% upper bound, not just the estimate
    # Each look at 95% instead: the same stopping errs far more often than 5%.
    naive = _simulate(500, 0.0, SIGNIFICANCE_ONLY, 0.95, seed=2)
    assert wilson(naive.get("better", 0) + naive.get("worse", 0), 500)[0] > 0.05, naive


def test_optional_stopping_keeps_false_equivalence_within_half_the_rate():
    # A change of exactly the margin (+0.1 pt): "equivalent" is false. Its interval's one tail
    # per look, at (5%/4)/2: over the looks at most 2.5%, well within 5%.
    ended = _simulate(2000, 0.001, compare.RULES, look_confidence(0.95, 4), seed=3)
    rate = wilson(ended.get("equivalent", 0), 2000)
    assert rate[1] <= 0.025, ended  # the 95% upper bound within half of 5%
    # Each look at 95% instead: false equivalents beyond that bound.
    naive = _simulate(500, 0.001, compare.RULES, 0.95, seed=4)
    assert wilson(naive.get("equivalent", 0), 500)[0] > rate[1], naive


def test_until_decided_needs_two_revisions_and_a_schedule(tmp_path, capsys, monkeypatch):
    fake_runs(tmp_path / "a", "up", [0.90, 0.91, 0.92])
    fake_runs(tmp_path / "b", "up", [0.90, 0.91, 0.93])
    code = main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--until-decided"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "") and err == (
        f"error: --until-decided runs more seeds of two git revisions; {tmp_path / 'a'} and "
        f"{tmp_path / 'b'} are folders or files\n"
    )
    code = main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--max-seeds", "8"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == "error: --max-seeds sets --until-decided's last look: give both\n"
    # Two revisions, a last look below the seeds given: refused before anything is checked out.
    repo = tmp_path / "repo"
    repo.mkdir()
    for argv in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@example.invalid",
                                  "commit", "-q", "--allow-empty", "-m", "empty"]):  # fmt: skip
        subprocess.run(["git", "-C", str(repo), *argv], check=True)
    monkeypatch.chdir(repo)
    argv = ["compare", "HEAD", "HEAD", "--jobs", "softmax", "--seeds", "0-3", "--until-decided"]
    code = main([*argv, "--max-seeds", "3"])
    _, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and errors == [
        "error: --max-seeds 3: expected from the 4 seeds of --seeds to 10000"
    ]
    assert sorted(p.name for p in repo.iterdir()) == [".git"]  # nothing made


@pytest.mark.slow
def test_until_decided_adds_seeds_to_undecided_rows_only(tmp_path, mnist):
    repo = make_repo(tmp_path / "repo")
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.0005")
    commit(repo, "lr / 1000")
    args = ("base", "HEAD", "--jobs", "softmax", "--seeds", "0-1", *TINY)
    args += ("--until-decided", "--max-seeds", "3")
    code, out, err = compare_revisions(repo, *args)
    assert code == 0, err
    looks = re.findall(r"^look (\d) of 2, (\d) seeds: (\d+) rows? still undecided", err, re.M)
    assert looks and looks[0][:2] == ("1", "2") and len(looks) <= 2
    header = next(line for line in out.splitlines() if line.startswith("seeds until decided"))
    assert header == (
        "seeds until decided: looks at 2, 3 seeds (K = 2), each judged at 97.5% "
        f"(Bonferroni over the looks); {len(looks)} of 2 looks ran"
    )
    rows = [line for line in out.splitlines() if line.startswith("softmax ")]
    accuracy = next(line for line in rows if " test_accuracy " in line)
    assert " worse " in accuracy and re.search(r"decided at [23] seeds", accuracy), accuracy
    for line in rows:  # every row says the seeds it got: decided, or still not at the last look
        assert re.search(r"decided at [23] seeds|undecided at 3 seeds", line), line
    # Seeds were added only while a row was undecided; every run finished, none made twice.
    made = runs_made(repo)
    assert len(made) == 2 * (2 + (len(looks) == 2))
    assert all(state_of(p).get("state") == "done" for p in made)
    before = {p: p.stat().st_mtime_ns for p in made}

    # Again, as JSON: every run is there, nothing is trained, the same rows.
    code, again, err = compare_revisions(repo, *args, "--json")
    assert code == 0 and "nothing to run" in err, err
    assert {p: p.stat().st_mtime_ns for p in runs_made(repo)} == before
    doc = json.loads(again)
    assert doc["until_decided"]["looks"] == [2, 3] and doc["until_decided"]["K"] == 2
    assert doc["confidence"] == pytest.approx(0.975, abs=1e-12)
    (row,) = [r for r in doc["rows"] if r["metric"] == "test_accuracy"]
    assert row["verdict"] == "worse" and row["seeds"] in (2, 3) and row["margin"] == 0.001


def test_a_clock_row_is_pursued_only_when_named():
    def row(metric, family, verdict):
        return {"kind": "run", "job": "softmax", "cell": "", "metric": metric,
                "family": family, "verdict": verdict}  # fmt: skip

    rows = [
        row("test_accuracy", compare.QUALITY, "worse"),
        row("train_seconds", compare.SPEED, "inconclusive"),
    ]
    # Accuracy decided, the clock undecided: the loop ends unless the clock is asked about.
    assert undecided(rows) == []
    assert undecided(rows, ("train_seconds",)) == [rows[1]]
    assert undecided(rows, ("test_accuracy",)) == []
    rows[0]["verdict"] = "inconclusive"
    assert undecided(rows) == [rows[0]]
