"""One damaged or hostile entry in a runs folder: listed as such, never hiding the others.

Every case builds the few runs it needs through the runner itself (crafted jobs under real job
names, no training), damages one entry as a careless or hostile user could, and pins what
``runs``, ``runs --summary`` and ``report`` then do: the exit code, the one line, and that every
finished run and a report built before are still there. Entries this user may not read need a
second uid: ``tests/test_shared_folders.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
import warnings
from pathlib import Path

from mnist_suite import plan, runs
from mnist_suite.jobs import Job, get_job
from mnist_suite.report import build_report
from tests.test_outputs import one_line_error, snapshot
from tests.test_security import TinyConfig

JOB = "softmax-original"
LEVER = {"eta": 0.02}  # a lever tried beside the quick default: the Variants section's rows


def cli(*argv: str) -> tuple[int, str, str]:
    from mnist_suite.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def report(runs_dir: Path, out: Path, *more: str) -> tuple[int, str, str]:
    return cli("report", "--runs", str(runs_dir), "--out", str(out),
               "--bench", str(out.parent / "no-bench"), *more)  # fmt: skip


def crafted(out: Path, seed: int, metrics: dict, **changes) -> Path:
    """A finished run of ``softmax-original`` (its quick config with ``changes``) whose train
    only returns ``metrics``: named, recorded and checked as the real job's runs are."""
    config = dataclasses.replace(get_job(JOB).resolve("quick"), **changes)
    job = Job(JOB, "crafted for these tests", type(config), lambda cfg, run: dict(metrics))
    run_id = plan.run_id(job, "", config, "quick", seed)
    outcome = runs.execute(job, "", config, seed=seed, profile="quick", out=out, run_id=run_id)
    assert outcome.state == "done", outcome.message
    return outcome.path


def four_runs(out: Path) -> list[Path]:
    """The quick default and the lever, seeds 0 and 1: every section has rows to build."""
    paths = []
    for changes, base in (({}, 0.80), (LEVER, 0.82)):
        for seed in (0, 1):
            value = base + 0.01 * seed
            metrics = {"dev_accuracy": value, "test_accuracy": value, "train_seconds": 1.0 + seed}
            paths.append(crafted(out, seed, metrics, **changes))
    return paths


def copy_run(path: Path, name: str, **config) -> Path:
    """``path`` copied to ``name`` beside it, its config.json changed by ``config``."""
    copy = path.with_name(name)
    shutil.copytree(path, copy)
    recorded = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(recorded | {"run_id": name} | config))
    return copy


def sections(out: Path) -> dict[str, dict]:
    return {s["key"]: s for s in json.loads((out / "results.json").read_text())["sections"]}


def test_a_run_that_does_not_fit_is_corrupt_and_every_section_is_built_without_it(tmp_path):
    """A run with profile "medium" and one with a torn config.json are listed as corrupt with
    the reason; Results at a glance, Classification and Variants are built from the others."""
    out = tmp_path / "runs"
    good = four_runs(out)
    medium = copy_run(good[0], "medium-x", profile="medium")
    torn = copy_run(good[1], "torn-x")
    (torn / "config.json").write_text((torn / "config.json").read_text()[:200])
    # A finished run whose time-to-target clock names no seconds: read as "not reached".
    metrics = json.loads((good[3] / "metrics.json").read_text())
    (good[3] / "metrics.json").write_text(
        json.dumps(metrics | {"time_to_target": {"seconds": None}})
    )
    before = {p: snapshot(p) for p in good}

    code, stdout, err = report(out, tmp_path / "rep")
    assert code == 0, err
    assert (
        err
        == "WARNING: 2 runs left out of every section (corrupt or unreadable; listed under Runs)\n"
    )
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    corrupt = {r["run_id"]: r["problem"] for r in results["runs"] if r["state"] == "corrupt"}
    assert (
        corrupt["medium-x"] == 'config.json: profile is str "medium", expected one of quick, full'
    )
    assert corrupt["torn-x"].startswith("config.json: not JSON (")
    assert sum(r["state"] == "done" for r in results["runs"]) == 4
    built = sections(tmp_path / "rep")
    assert {"answer", "classification", "variants"} <= set(built)
    (levers,) = built["variants"]["tables"]
    assert [row["config_vs_the_profile_s_default"] for row in levers["rows"]] == [
        "default",
        "eta=0.02",
    ]
    inventory = {row["run_id"]: row["state"] for row in built["runs"]["tables"][0]["rows"]}
    assert inventory["medium-x"].startswith("corrupt: config.json: profile is str")
    assert "(1 more left out" not in (tmp_path / "rep" / "index.md").read_text()
    assert "(2 more left out: corrupt or unreadable" in (tmp_path / "rep" / "index.md").read_text()

    code, stdout, err = cli("runs", "--summary", "--runs", str(out))
    assert code == 0 and err == "", err
    assert f"corrupt: {medium}: config.json: profile is str" in stdout
    assert f"corrupt: {torn}: config.json: not JSON" in stdout
    assert {p: snapshot(p) for p in good} == before  # every finished run as it was


def test_a_section_that_still_cannot_be_built_fails_naming_the_run(tmp_path, monkeypatch):
    """Exit 1 with one line naming the run that alone breaks the section; no report is
    written and the one there stays."""
    from mnist_suite.report import replicates

    out = tmp_path / "runs"
    four_runs(out)
    assert report(out, tmp_path / "rep")[0] == 0
    odd = crafted(out, 0, {"dev_accuracy": 0.5, "test_accuracy": 0.5}, eta=0.07)
    kept = snapshot(tmp_path / "rep")
    real = replicates.non_default

    def breaks_on_the_odd_config(job, cell, profile, config):  # a fault no schema foresaw
        if config.get("eta") == 0.07:
            raise ValueError("crafted fault")
        return real(job, cell, profile, config)

    monkeypatch.setattr(replicates, "non_default", breaks_on_the_odd_config)
    code, _, err = report(out, tmp_path / "rep")
    one_line_error(code, err, 1)
    assert err == (
        "error: section 'Results at a glance' cannot be built (ValueError: crafted fault): "
        f"run {JOB} at {odd} fails it alone\n"
    )
    assert snapshot(tmp_path / "rep") == kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_a_report_of_more_finished_runs_is_replaced_only_with_force(tmp_path):
    """Refused with one line naming both numbers (exit 2, the report as it was); ``--force``
    replaces it and says the same."""
    out = tmp_path / "runs"
    paths = four_runs(out)
    rep = tmp_path / "rep"
    assert report(out, rep)[0] == 0
    kept = snapshot(rep)
    for path in paths[1:]:
        shutil.move(path, tmp_path / path.name)  # three runs moved away: their figures with them

    code, _, err = report(out, rep)
    one_line_error(code, err)
    said = f"out {rep}: a report of 4 finished runs; this one has 1"
    assert err == f"error: {said}: left as it is (--force replaces it)\n"
    assert snapshot(rep) == kept

    code, _, err = report(out, rep, "--force")
    assert code == 0 and err == f"WARNING: {said}: replaced (--force)\n", err
    assert (
        sum(r["state"] == "done" for r in json.loads((rep / "results.json").read_text())["runs"])
        == 1
    )
    # As many finished runs as before (or more): replaced without a word.
    code, _, err = report(out, rep)
    assert code == 0 and err == "", err


HOSTILE = "x\x1b[31m\x1b]0;title\x07\r\nforged line"


def test_runs_summary_escapes_every_string_from_the_runs(tmp_path):
    """ANSI colours, an OSC title, CR and newlines in a run's job folder, cell and
    fingerprint reach ``runs --summary`` (and ``runs``) escaped, one line per row."""
    out = tmp_path / "runs"
    # A job of ours cannot carry such a name: the run is made under a plain one, then its
    # records and folder are given the hostile name, as a crafted runs folder would hold them.
    job = Job("plain", "test job", TinyConfig, lambda cfg, run: {"test_accuracy": 0.5})
    made = runs.execute(job, HOSTILE, TinyConfig(), seed=0, profile="quick", out=out,
                        run_id="r1").path  # fmt: skip
    made.parent.rename(out / HOSTILE)
    path = out / HOSTILE / made.name
    recorded = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(
        json.dumps(recorded | {"job": HOSTILE, "fingerprint": HOSTILE})
    )
    escaped = "x\\x1b[31m\\x1b]0;title\\x07\\r\\nforged line"
    for argv in (["runs", "--summary"], ["runs"]):
        code, stdout, err = cli(*argv, "--runs", str(out))
        assert code == 0 and err == "", err
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", stdout), stdout
        assert not any(line.startswith("forged line") for line in stdout.splitlines())
        assert stdout.count(escaped) == 3, stdout  # job, cell and code columns


def test_figures_beyond_any_run_make_the_run_corrupt_and_the_report_quiet(tmp_path):
    """A load average of 1e308 and a test MSE of 1e200: each run corrupt with the reason,
    the report built without a RuntimeWarning and without a 309-digit number."""
    out = tmp_path / "runs"
    good = four_runs(out)
    load = copy_run(good[0], "load-x")
    recorded = json.loads((load / "config.json").read_text())
    recorded["machine_info"]["load_average"] = [1e308, 1.0, 1.0]
    (load / "config.json").write_text(json.dumps(recorded))
    # Two seeds of one group, one figure beyond any run's: the sd over them overflows.
    huge, other = good[2], good[3]
    for path, value in ((huge, 1e200), (other, 0.5)):
        metrics = json.loads((path / "metrics.json").read_text())
        (path / "metrics.json").write_text(json.dumps(metrics | {"test_mse": value}))

    assert runs.load_run(load).problem == (
        "config.json: machine_info.load_average is list [1e+308, 1.0, 1.0], expected up to three "
        "numbers in [0, 1000000]"
    )
    assert runs.load_run(huge).problem == (
        "metrics.json: test_mse is float 1e+200, expected a number in its range"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = build_report(out, None, tmp_path / "rep")
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    states = {r["run_id"]: r["state"] for r in results["runs"]}
    assert (states["load-x"], states[huge.name], states[other.name]) == (
        "corrupt",
        "corrupt",
        "done",
    )
    assert not re.search(r"\d{20}", (tmp_path / "rep" / "index.md").read_text())

    # The runner never records what its readers refuse: such a figure is written as null.
    done = crafted(tmp_path / "other", 0, {"test_accuracy": 0.5, "test_mse": 1e200})
    assert runs.load_run(done).state == "done"
    assert json.loads((done / "metrics.json").read_text())["test_mse"] is None


def test_a_folder_whose_name_and_config_disagree_is_corrupt_and_redone(tmp_path):
    """Seed 0's record copied into seed 1's folder (its run id changed too) is not seed 1
    done: corrupt, listed, and the planned run is made; seed 0's run is left as it was."""
    out = tmp_path / "runs"
    seed0 = crafted(out, 0, {"test_accuracy": 0.8})
    config = get_job(JOB).resolve("quick")
    job = Job(JOB, "crafted", type(config), lambda cfg, run: {"test_accuracy": 0.9})
    planned = out / JOB / plan.run_id(job, "", config, "quick", 1)
    assert re.fullmatch(r"quick-s1-[0-9a-f]{8}", planned.name)
    copy_run(seed0, planned.name)
    before = snapshot(seed0)

    run = runs.load_run(planned)
    assert (run.state, run.problem) == (
        "corrupt",
        "config.json: seed is 0, but the run's folder says 1",
    )
    code, stdout, _ = cli("runs", "--runs", str(out))
    rows = {line.split()[-1]: line for line in stdout.splitlines()[1:-1]}
    assert code == 0 and rows[planned.name].startswith("corrupt "), stdout
    assert "config.json: seed is 0, but the run's folder says 1" in rows[planned.name]
    redo = runs.execute(job, "", config, seed=1, profile="quick", out=out, run_id=planned.name)
    assert (redo.state, redo.skipped) == ("done", False)
    assert runs.load_run(planned).seed == 1
    assert snapshot(seed0) == before


def test_a_job_folder_that_is_a_link_is_corrupt_and_not_read(tmp_path):
    """A job folder linked to runs elsewhere: one corrupt line, its runs not read."""
    out = tmp_path / "runs"
    four_runs(out)
    elsewhere = tmp_path / "elsewhere"
    crafted(elsewhere, 5, {"test_accuracy": 0.9})
    (out / "linked").symlink_to(elsewhere / JOB)
    listed = runs.scan(out)
    assert [(r.job, r.state, r.run_id) for r in listed if r.job == "linked"] == [
        ("linked", "corrupt", "")
    ]
    assert sum(r.state == "done" for r in listed) == 4
    code, stdout, _ = cli("runs", "--runs", str(out))
    linked = [line for line in stdout.splitlines() if line.split()[:2] == ["corrupt", "linked"]]
    assert code == 0 and stdout.endswith("5 runs: 1 corrupt, 4 outdated\n"), stdout
    assert len(linked) == 1 and "a symbolic link" in linked[0] and str(elsewhere) not in stdout
