"""Runs know their code: a job's fingerprint follows the modules it executes, and a finished
run of other code is outdated (shown, re-run by default, kept with --reuse-outdated)."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from mnist_suite import fingerprint, jobs, runs
from mnist_suite.batch import decide_item, item_states
from mnist_suite.jobs import all_jobs
from mnist_suite.plan import build_plan, run_dir

NUMPY_JOBS = {"softmax", "softmax-original", "mlp", "mlp-fast", "mlp-sprint", "mlp-original"}


@pytest.fixture
def source(tmp_path) -> Path:
    """A copy of the package's source to edit (the real files are never touched)."""
    copy = tmp_path / "src" / "mnist_suite"
    shutil.copytree(fingerprint.SOURCE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def change_a_function(path: Path) -> None:
    """Add a statement to the body of the file's first function (code that runs when called)."""
    lines = path.read_text().splitlines(keepends=True)
    first = next(n for n in ast.walk(ast.parse("".join(lines))) if isinstance(n, ast.FunctionDef))
    at = first.body[0]
    lines.insert(at.lineno - 1, " " * at.col_offset + "_changed = 1\n")
    path.write_text("".join(lines))


def _prints(root: Path | None = None) -> dict[str, str | None]:
    return {
        name: fingerprint.of_module(job.train.__module__, root) for name, job in all_jobs().items()
    }


def test_the_copy_has_the_real_fingerprints(source):
    assert _prints(source) == _prints()
    assert all(_prints().values())


def test_a_numpy_layer_change_changes_exactly_the_numpy_jobs(source):
    before = _prints(source)
    change_a_function(source / "nn" / "layers.py")
    fingerprint._of_module.cache_clear()
    after = _prints(source)
    assert {name for name in before if before[name] != after[name]} == NUMPY_JOBS


def test_report_and_docs_changes_change_no_job(source):
    before = _prints(source)
    overview = source / "report" / "overview.py"
    overview.write_text(overview.read_text() + "\nCHANGED = 1\n")
    (source.parent / "README.md").write_text("changed")
    fingerprint._of_module.cache_clear()
    assert _prints(source) == before


def test_a_tensorflow_loop_change_leaves_the_numpy_jobs_alone(source):
    before = _prints(source)
    change_a_function(source / "tfsgd" / "loop.py")
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

    change_a_function(source / "nn" / "layers.py")
    monkeypatch.setattr(fingerprint, "SOURCE_ROOT", source)
    fingerprint._of_module.cache_clear()
    states = dict(zip([i.job for i in items], item_states(items, out), strict=True))
    assert {job for job, s in states.items() if s == "outdated"} == NUMPY_JOBS
    rerun = {i.job for i in items if not decide_item(out, i).skip}
    assert rerun == NUMPY_JOBS
    # Planned again, the NumPy jobs' items name new folders (the code is part of a run's
    # identity): the old runs stay where they are, beside the new ones.
    replanned = build_plan(list(all_jobs()), profile="quick", seeds=None)
    moved = {a.job for a, b in zip(items, replanned, strict=True) if a.run_id != b.run_id}
    assert moved == NUMPY_JOBS
    states = dict(zip([i.job for i in replanned], item_states(replanned, out), strict=True))
    assert {job for job, s in states.items() if s == "missing"} == NUMPY_JOBS
    assert {s for job, s in states.items() if job not in NUMPY_JOBS} == {"done"}
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


def test_comments_docstrings_and_layout_are_not_code(source):
    before = _prints(source)
    layers = source / "nn" / "layers.py"
    text = layers.read_text()
    text = text.replace('"""', '"""A docstring edit. ', 1)  # the module's docstring
    text = "# a comment\n\n" + text.replace("\n\n\n", "\n\n\n\n", 1) + "\n# trailing comment\n"
    layers.write_text(text)
    fingerprint._of_module.cache_clear()
    assert _prints(source) == before
    change_a_function(layers)
    fingerprint._of_module.cache_clear()
    assert _prints(source) != before


MLP_JOBS = {"mlp", "mlp-fast", "mlp-sprint", "mlp-original"}


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_a_job_modules_edit_changes_its_own_jobs_alone(source):
    """A job's module is imported only when that job is asked for: another job's module, body
    or functions, is no part of its code."""
    before = _prints(source)
    softmax = source / "jobs" / "softmax.py"
    text = softmax.read_text()
    assert text.count("    lr: float = 0.5  #") == 1
    softmax.write_text(text.replace("    lr: float = 0.5  #", "    lr: float = 0.4  #"))
    fingerprint._of_module.cache_clear()
    assert _changed(before, _prints(source)) == {"softmax", "softmax-original"}
    softmax.write_text(text)

    mlp = source / "jobs" / "mlp.py"
    original = mlp.read_text()
    change_a_function(mlp)
    fingerprint._of_module.cache_clear()
    assert _changed(before, _prints(source)) == MLP_JOBS
    # A statement in the module's body runs only where one of its jobs is asked for.
    mlp.write_text(original + "\nimport mnist_suite.nn.layers as _layers\n_layers.CHANGED = 1\n")
    fingerprint._of_module.cache_clear()
    assert _changed(before, _prints(source)) == MLP_JOBS
    fingerprint._of_module.cache_clear()


def test_the_registry_reads_each_jobs_module_from_the_source():
    declared = jobs.declared(fingerprint.SOURCE_ROOT)
    registered = {
        name: job.train.__module__
        for name, job in all_jobs().items()
        if job.train.__module__.startswith("mnist_suite.jobs.")
    }
    assert declared == registered and len(declared) == 12


def test_a_job_name_is_read_from_a_plain_job_call(tmp_path):
    folder = tmp_path / "mnist_suite" / "jobs"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "one.py").write_text(
        'register(Job(name="a", train=f))\nregister(Job("b", "summary", C, f))\n'
        'NAME = "c"\nregister(Job(name=NAME, train=f))\nOther(name="d")\n'
    )
    one = "mnist_suite.jobs.one"
    assert jobs.declared(folder.parent) == {"a": one, "b": one}
    (folder / "two.py").write_text('register(Job(name="b", train=g))\n')
    with pytest.raises(ValueError, match=r"'b' declared in mnist_suite\.jobs\.one and "):
        jobs.declared(folder.parent)


def test_the_registry_and_the_fingerprint_import_each_other_one_way():
    """The registry never imports the fingerprint module (the run id is the plan's)."""
    path = fingerprint.module_file("mnist_suite.jobs", fingerprint.SOURCE_ROOT)
    imported = fingerprint._imported(ast.parse(path.read_text()), "mnist_suite.jobs", True)
    assert "mnist_suite.fingerprint" not in imported and "mnist_suite.plugins" in imported


def test_an_installed_copy_that_differs_from_the_checkout_says_so(source, monkeypatch):
    checkout = source.parent
    (checkout / "pyproject.toml").write_text("[project]\nname = 'mnist-suite'\n")
    assert fingerprint.checkout_note(checkout) is None  # the checkout is not the running code…
    monkeypatch.setattr(fingerprint, "SOURCE_ROOT", fingerprint.SOURCE_ROOT)
    # …but it means the same: nothing to say. A code change in the checkout is said, in one line.
    change_a_function(source / "nn" / "layers.py")
    note = fingerprint.checkout_note(checkout / "mnist_suite" / "nn")
    assert note is not None and "\n" not in note and str(checkout) in note
    assert "pip install -e ." in note
    assert fingerprint.checkout_note(checkout.parent) is None  # outside a checkout: silent


def test_readers_take_each_job_at_its_newest_code(tmp_path):
    def record(job: str, code: str | None, started: str):
        path = tmp_path / job / f"{code}-{started}"
        config = {"job": job, "fingerprint": code} if code else {"job": job}
        return runs.RunRecord(path, "done", config_file=config, status={"started_at": started})

    found = [
        record("softmax", "aaa", "2026-01-01T00:00:00"),
        record("softmax", "bbb", "2026-01-02T00:00:00"),
        record("softmax", "aaa", "2026-01-01T01:00:00"),
        record("mlp", None, "2026-01-03T00:00:00"),
        record("mlp", "ccc", "2026-01-03T00:00:00"),  # same time: the run that knows its code
    ]
    kept, left_out = runs.newest_code(found)
    assert [(r.job, r.fingerprint) for r in kept] == [("softmax", "bbb"), ("mlp", "ccc")]
    assert left_out == 3
