"""The work plan and its command line: numbering, selection by index or engine variable, status."""

from __future__ import annotations

import json

import pytest

from mnist_suite.errors import ConfigError
from mnist_suite.plan import (
    array_spec,
    build_plan,
    index_from_env,
    load_plan,
    parse_items,
    parse_seeds,
    plan_document,
    plan_hash,
    subset,
)

# A softmax-original run small enough for a test: 1,000 samples, two evaluations (~1 s).
TINY = (
    "softmax-original",
    "--profile",
    "quick",
    "--set",
    "n_train=1000",
    "--set",
    "eval_every=500",
)


def test_sgd_grid_over_three_seeds_has_54_items_seed_major():
    items = build_plan(["sgd-grid"], seeds=parse_seeds("0-2"))
    assert len(items) == 54
    assert [i.index for i in items] == list(range(54))
    assert [i.seed for i in items] == [0] * 18 + [1] * 18 + [2] * 18
    assert [i.cell for i in items[:18]] == [i.cell for i in items[18:36]]
    assert len({i.run_id for i in items}) == 54
    assert {i.flavour for i in items} == {"tf"}


def test_adding_seeds_appends_and_keeps_every_index():
    three = build_plan(["softmax", "sgd-grid"], profile="quick", seeds=(0, 1, 2))
    five = build_plan(["softmax", "sgd-grid"], profile="quick", seeds=parse_seeds("0-4"))
    assert five[: len(three)] == three
    assert plan_hash(five[: len(three)]) == plan_hash(three)
    assert plan_hash(five) != plan_hash(three)


def test_plan_depends_only_on_its_arguments():
    a = build_plan(["softmax", "sgd-grid"], profile="quick", seeds=(3, 1))
    b = build_plan(["softmax", "sgd-grid"], profile="quick", seeds=(3, 1))
    assert a == b and plan_hash(a) == plan_hash(b)
    changed = build_plan(
        ["softmax", "sgd-grid"], profile="quick", seeds=(3, 1), overrides=("epochs=1",)
    )
    assert plan_hash(changed) != plan_hash(a)


def test_saved_plan_round_trips(tmp_path):
    items = build_plan(["softmax-original", "sgd-grid"], profile="quick", seeds=(0, 1))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_document(items)))
    assert load_plan(path) == items
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError, match="not a saved plan"):
        load_plan(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0-4", (0, 1, 2, 3, 4)), ("0,3,7", (0, 3, 7)), ("5,0-1,5", (5, 0, 1)), ("7", (7,))],
)
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "0-99999"])
def test_parse_seeds_rejects(text):
    with pytest.raises(ConfigError, match="seeds"):
        parse_seeds(text)


def test_index_from_env_order_and_errors():
    assert index_from_env({}) is None
    assert index_from_env({"SLURM_ARRAY_TASK_ID": "4"}) == 4
    assert index_from_env({"JOB_COMPLETION_INDEX": "2", "SLURM_ARRAY_TASK_ID": "4"}) == 2
    assert index_from_env({"MNIST_SUITE_INDEX": "1", "JOB_COMPLETION_INDEX": "2"}) == 1
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX"):
        index_from_env({"JOB_COMPLETION_INDEX": "x"})


def test_subset_by_flavour_and_items_keeps_plan_indexes():
    items = build_plan(["softmax", "sgd-grid", "mlp-original"], profile="quick", seeds=(0, 1))
    tf = subset(items, flavour="tf")
    assert [i.index for i in tf] == [1, 2, 5, 6]  # quick sgd-grid: 2 cells
    assert [i.index for i in subset(items, flavour="numpy", only=parse_items("0-3,6"))] == [0, 3]
    with pytest.raises(ConfigError, match="items 99"):
        subset(items, only=(99,))


def test_array_spec_compresses_runs():
    assert array_spec([0, 1, 2, 3, 8, 15, 16]) == "0-3,8,15-16"
    assert array_spec([4]) == "4"
    assert array_spec([]) == ""


# --- the command line ----------------------------------------------------------------------


def test_plan_cli_table_json_and_save(run_cli, tmp_path):
    code, out, _ = run_cli("plan", "sgd-grid", "--seeds", "0-2")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["index", "job", "cell", "seed", "run", "id", "flavour"]
    assert len(lines) == 1 + 54 + 1 and lines[-1].startswith("54 items, plan ")
    code, out, _ = run_cli("plan", "sgd-grid", "--seeds", "0-2", "--json")
    doc = json.loads(out)
    assert len(doc["items"]) == 54 and doc["items"][53]["seed"] == 2
    code, out, _ = run_cli("plan", "sgd-grid", "--seeds", "0-2", "--save", str(tmp_path / "p.json"))
    assert code == 0 and len(load_plan(tmp_path / "p.json")) == 54


def _ran(stdout: str) -> list[str]:
    return [line.split()[1].rsplit("/", 1)[-1] for line in stdout.strip().splitlines()]


@pytest.mark.parametrize(
    "variable", ["MNIST_SUITE_INDEX", "JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", None]
)
def test_run_picks_the_item_from_index_or_environment(run_cli, monkeypatch, variable):
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1, 2), overrides=TINY[4::2])
    args = ["run", *TINY, "--seeds", "0-2"]
    if variable is None:
        args += ["--index", "2"]
    else:
        monkeypatch.setenv(variable, "2")
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert _ran(out) == [items[2].run_id]


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["--index", "3"], "index 3: the plan has items 0..2"),
        ({"JOB_COMPLETION_INDEX": "7"}, [], "$JOB_COMPLETION_INDEX 7: the plan has items 0..2"),
        ({"SLURM_ARRAY_TASK_ID": "x"}, [], "$SLURM_ARRAY_TASK_ID='x'"),
        ({}, ["--flavour", "tf", "--index", "0"], "index 0: the selection has no items"),
        ({}, ["--plan-fingerprint", "00000000"], "plan hash 00000000: this plan is"),
    ],
)
def test_run_out_of_range_is_one_line_exit_2(run_cli, monkeypatch, env, argv, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = run_cli("run", *TINY, "--seeds", "0-2", *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_run_from_saved_plan_and_status_and_pending(run_cli, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    plan = tmp_path / "plan.json"
    assert run_cli("plan", *TINY, "--seeds", "0-3", "--save", str(plan))[0] == 0
    items = load_plan(plan)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    code, out, err = run_cli("run", "--plan", str(plan), "--runs", str(runs))
    assert code == 0 and _ran(out) == [items[1].run_id], err
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    code, out, err = run_cli("run", "--plan", str(plan), "--index", "3", "--runs", str(runs))
    assert code == 0, err
    # Item 2 failed: a run folder whose status says so.
    failed = runs / items[2].job / items[2].run_id
    failed.mkdir(parents=True)
    (failed / "config.json").write_text("{}")
    (failed / "status.json").write_text('{"state": "failed", "message": "boom"}')

    code, out, _ = run_cli("plan", "--plan", str(plan), "--status", "--runs", str(runs))
    states = [line.split()[1] for line in out.strip().splitlines()[1:-1]]
    assert code == 0 and states == ["missing", "done", "failed", "done"]
    assert out.strip().splitlines()[-1].endswith("1 missing, 2 done, 1 failed")

    code, out, _ = run_cli("plan", "--plan", str(plan), "--pending", "--runs", str(runs), "--json")
    doc = json.loads(out)
    assert doc["pending"] == [0, 2] and doc["slurm"] == "--array=0,2"
    assert doc["kubernetes"] == {"numpy": {"items": [0, 2], "completions": 2}}
    code, out, _ = run_cli("plan", "--plan", str(plan), "--pending", "--runs", str(runs))
    assert "sbatch --array=0,2 job.sbatch" in out and "--items 0,2" in out

    # Only the pending items run again; the done ones are not touched.
    code, out, err = run_cli("run", "--plan", str(plan), "--items", "0,2", "--runs", str(runs))
    assert code == 0 and _ran(out) == [items[0].run_id, items[2].run_id], err
    code, out, _ = run_cli("plan", "--plan", str(plan), "--pending", "--runs", str(runs))
    assert out.startswith("nothing pending")


def test_plan_conflicts_with_selection_arguments(run_cli, tmp_path):
    plan = tmp_path / "plan.json"
    run_cli("plan", "softmax", "--save", str(plan))
    code, _, err = run_cli("run", "--plan", str(plan), "softmax")
    assert code == 2 and "leave them out" in err
    code, _, err = run_cli("run")
    assert code == 2 and "name at least one job" in err


def test_old_out_spelling_warns_once_and_still_works(run_cli, tmp_path):
    code, out, err = run_cli("run", *TINY, "--out", str(tmp_path / "old"))
    assert code == 0
    assert err.count("warning: --out is now --runs") == 1
    assert (tmp_path / "old" / "softmax-original").is_dir()
    code, out, err = run_cli("runs", "--out", str(tmp_path / "old"))
    assert code == 0 and out.splitlines()[1].startswith("done") and "--runs" in err


def _fake_run(runs, job, run_id, state, started_at):
    path = runs / job / run_id
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"job": job, "profile": "quick", "seed": 0}))
    (path / "status.json").write_text(json.dumps({"state": state, "started_at": started_at}))
    if state == "done":  # a done run without metrics is not done (it reads as corrupt)
        (path / "metrics.json").write_text(json.dumps({"wall_seconds": 1.0}))
    return path


def test_report_reads_several_runs_folders_and_counts_a_run_once(tmp_path, run_cli):
    from mnist_suite.report.collect import collect_runs

    a, b = tmp_path / "a", tmp_path / "b"
    _fake_run(a, "softmax", "quick-s0-aaaa", "done", "2026-01-01T00:00:00")
    newer_failed = _fake_run(b, "softmax", "quick-s0-aaaa", "failed", "2026-01-02T00:00:00")
    _fake_run(a, "softmax", "quick-s1-bbbb", "failed", "2026-01-01T00:00:00")
    newer = _fake_run(b, "softmax", "quick-s1-bbbb", "failed", "2026-01-03T00:00:00")
    only_b = _fake_run(b, "mlp", "quick-s0-cccc", "done", "2026-01-01T00:00:00")
    records = collect_runs([a, b])
    assert [(r.job, r.path.name) for r in records] == [
        ("mlp", "quick-s0-cccc"),
        ("softmax", "quick-s0-aaaa"),
        ("softmax", "quick-s1-bbbb"),
    ]
    assert records[0].path == only_b
    assert records[1].state == "done" and records[1].path != newer_failed  # done wins
    assert records[2].path == newer  # neither done: the newest
    code, _, err = run_cli(
        "report", "--runs", str(a), "--runs", str(b), "--out", str(tmp_path / "rep")
    )
    assert code == 0, err
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert len(results["runs"]) == 3


def test_a_stale_saved_plan_is_refused_before_anything_runs(run_cli, tmp_path):
    plan, runs = tmp_path / "plan.json", tmp_path / "runs"
    run_cli("plan", *TINY, "--seeds", "0-1", "--save", str(plan))
    doc = json.loads(plan.read_text())
    doc["items"][1]["run_id"] = "quick-s1-00000000"  # as if saved by another suite version
    plan.write_text(json.dumps(doc))
    code, out, err = run_cli("run", "--plan", str(plan), "--runs", str(runs))
    assert code == 2 and "plan item 1 (softmax-original, seed 1)" in err
    assert out == "" and not runs.exists()


def test_default_seeds_follow_each_jobs_declaration():
    """`--seeds default`: every job over its own seeds, seed-major, the long jobs fewer."""
    from mnist_suite.jobs import get_job
    from mnist_suite.plan import build_plan

    jobs = ["softmax-original", "sgd-grid"]
    items = build_plan(jobs, profile="full", seeds=None)
    for name in jobs:
        want = get_job(name).default_seeds("full")
        cells = len(get_job(name).expand(get_job(name).resolve("full")))
        got = [i.seed for i in items if i.job == name]
        assert sorted(set(got)) == list(want) and len(got) == cells * len(want)
    assert [i.seed for i in items] == sorted(i.seed for i in items)  # seed-major
    assert {i.seed for i in build_plan(jobs, profile="quick", seeds=None)} == {0}
