"""Runs know their code: a job's fingerprint follows the modules it executes, and a finished
run of other code is outdated (shown, re-run by default, kept with --reuse-outdated)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mnist_suite import fingerprint, runs
from mnist_suite.batch import decide_item, item_states
from mnist_suite.jobs import all_jobs
from mnist_suite.plan import build_plan, run_dir

NUMPY_JOBS = {"softmax", "softmax-original", "mlp", "mlp-fast", "mlp-original"}


@pytest.fixture
def source(tmp_path) -> Path:
    """A copy of the package's source to edit (the real files are never touched)."""
    copy = tmp_path / "src" / "mnist_suite"
    shutil.copytree(fingerprint.SOURCE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _prints(root: Path | None = None) -> dict[str, str | None]:
    return {
        name: fingerprint.of_module(job.train.__module__, root) for name, job in all_jobs().items()
    }


def test_the_copy_has_the_real_fingerprints(source):
    assert _prints(source) == _prints()
    assert all(_prints().values())


def test_a_numpy_layer_change_changes_exactly_the_numpy_jobs(source):
    before = _prints(source)
    layers = source / "nn" / "layers.py"
    layers.write_text(layers.read_text() + "\n# a change\n")
    fingerprint._of_module.cache_clear()
    after = _prints(source)
    assert {name for name in before if before[name] != after[name]} == NUMPY_JOBS


def test_report_and_docs_changes_change_no_job(source):
    before = _prints(source)
    overview = source / "report" / "overview.py"
    overview.write_text(overview.read_text() + "\n# a change\n")
    (source.parent / "README.md").write_text("changed")
    fingerprint._of_module.cache_clear()
    assert _prints(source) == before


def test_a_tensorflow_loop_change_leaves_the_numpy_jobs_alone(source):
    before = _prints(source)
    loop = source / "tfsgd" / "loop.py"
    loop.write_text(loop.read_text() + "\n# a change\n")
    fingerprint._of_module.cache_clear()
    after = _prints(source)
    assert {n for n in before if before[n] != after[n]} == {
        "sgd-grid",
        "sgd-lr-sweep",
        "sgd-original",
    }


def _fake_done(runs_dir: Path, item, code: str | None) -> None:
    path = run_dir(runs_dir, item)
    path.mkdir(parents=True)
    config = {"job": item.job, "cell": item.cell, "profile": item.profile, "seed": item.seed}
    config |= {"run_id": item.run_id, "config": {}} | ({"fingerprint": code} if code else {})
    (path / "config.json").write_text(json.dumps(config))
    (path / "status.json").write_text(json.dumps({"state": "done"}))
    (path / "metrics.json").write_text(json.dumps({"wall_seconds": 1.0, "test_accuracy": 0.9}))


def test_a_layer_change_makes_the_quick_suite_rerun_exactly_the_numpy_jobs(
    source, tmp_path, monkeypatch
):
    """The quick plan recorded at this code; then nn/layers.py changes (in a copy)."""
    items = build_plan(list(all_jobs()), profile="quick", seeds=None)
    out = tmp_path / "runs"
    for item in items:
        _fake_done(out, item, fingerprint.for_job_name(item.job))
    assert set(item_states(items, out)) == {"done"}
    assert all(decide_item(out, i).skip for i in items)  # nothing would run

    layers = source / "nn" / "layers.py"
    layers.write_text(layers.read_text().replace('"""', '"""Changed. ', 1))
    monkeypatch.setattr(fingerprint, "SOURCE_ROOT", source)
    fingerprint._of_module.cache_clear()
    states = dict(zip([i.job for i in items], item_states(items, out), strict=True))
    assert {job for job, s in states.items() if s == "outdated"} == NUMPY_JOBS
    rerun = {i.job for i in items if not decide_item(out, i).skip}
    assert rerun == NUMPY_JOBS
    why = decide_item(out, next(i for i in items if i.job == "mlp-fast"), reuse_outdated=True)
    assert why.skip and "kept" in why.note
    fingerprint._of_module.cache_clear()


def test_a_readme_change_reruns_nothing(tmp_path, monkeypatch, source):
    items = build_plan(list(all_jobs()), profile="quick", seeds=None)
    out = tmp_path / "runs"
    for item in items:
        _fake_done(out, item, fingerprint.for_job_name(item.job))
    (source.parent / "README.md").write_text("a new README")
    monkeypatch.setattr(fingerprint, "SOURCE_ROOT", source)
    fingerprint._of_module.cache_clear()
    assert set(item_states(items, out)) == {"done"}
    assert all(decide_item(out, i).skip for i in items)
    fingerprint._of_module.cache_clear()


def test_runs_recorded_without_a_fingerprint_are_outdated_unknown(tmp_path):
    item = build_plan(["softmax"], profile="quick", seeds=(0,))[0]
    _fake_done(tmp_path, item, None)
    run = runs.load_run(run_dir(tmp_path, item))
    current = fingerprint.for_job_name("softmax")
    assert run.code_state(current) == "unknown" and run.shown_state(current) == "outdated"
    assert "recorded without a code fingerprint" in runs.outdated_note(run, current)
    assert item_states([item], tmp_path) == ["outdated"]


def test_execute_reruns_an_outdated_run_and_keeps_it_with_reuse_outdated(
    tmp_path, monkeypatch, caplog
):
    from tests.test_runs import TINY, TinyConfig

    code = {"now": "aaaa"}
    monkeypatch.setattr(fingerprint, "of_job", lambda job: code["now"])

    def execute(**kw):
        return runs.execute(
            TINY, "", TinyConfig(), seed=0, profile="quick", out=tmp_path, run_id="r1", **kw
        )

    assert execute().state == "done"
    assert runs.load_run(tmp_path / "tiny" / "r1").fingerprint == "aaaa"
    assert execute().skipped  # same code: already recorded
    code["now"] = "bbbb"
    kept = execute(reuse_outdated=True)
    assert kept.skipped and "kept" in kept.message and "aaaa" in kept.message
    rerun = execute()
    assert rerun.state == "done" and not rerun.skipped
    assert "running it again" in caplog.text
    assert runs.load_run(tmp_path / "tiny" / "r1").fingerprint == "bbbb"
