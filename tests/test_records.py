"""Run records of any shape: schemas on read, ``corrupt`` runs listed, reported and redone."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_suite import records, runs
from mnist_suite.jobs import Job

RECORD_FILES = ("config.json", "status.json", "metrics.json", "history.jsonl")


@dataclass(frozen=True)
class TinyConfig:
    steps: int = 2


def tiny_train(cfg: TinyConfig, run) -> dict:
    for step in range(cfg.steps):
        run.log(step, "epoch", train_loss=1.0 / (step + 1), test_accuracy=0.5)
    return {
        "test_accuracy": 0.5,
        "per_epoch": [0.4, 0.5],
        "variant": "plain",
        "original_style": False,
    }


TINY = Job("tiny", "test job", TinyConfig, tiny_train)


def _execute(out: Path, run_id: str = "r1", force: bool = False):
    return runs.execute(
        TINY, "", TinyConfig(), seed=0, profile="quick", out=out, run_id=run_id, force=force
    )


@pytest.fixture
def done_run(tmp_path) -> Path:
    outcome = _execute(tmp_path / "runs")
    assert outcome.state == "done"
    return outcome.path


def _cli(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from mnist_suite.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# --- the examples of the issue, one per record file ----------------------------------------

CASES = {
    "metrics is a list": ("metrics.json", [1, 2], "metrics.json: holds a JSON list"),
    "metrics garbage": ("metrics.json", b"\x00garbage", "metrics.json: not JSON"),
    "metrics without wall time": ("metrics.json", {"wall_seconds": None}, "no wall_seconds"),
    "accuracy is a string": (
        "metrics.json",
        {"test_accuracy": "high", "wall_seconds": 1.0},
        "test_accuracy is str",
    ),
    "status not an object": ("status.json", "done", "status.json: holds a JSON str"),
    "heartbeat a string": ("status.json", {"heartbeat_unix": "soon"}, "heartbeat_unix is str"),
    "pid a list": ("status.json", {"pid": [1]}, "pid is list"),
    "state a number": ("status.json", {"state": 3}, "state is int"),
    "state unknown": ("status.json", {"state": "finished"}, "state is str"),
    "seed negative": ("config.json", {"seed": -1}, "seed is int -1"),
    "config a number": ("config.json", 7, "config.json: holds a JSON int"),
    "history row a list": ("history.jsonl", [[1, 2]], "history.jsonl line 1: holds a JSON list"),
    "history step a string": ("history.jsonl", [{"step": "1"}], "history.jsonl line 1: needs"),
}


def _write(path: Path, name: str, value) -> None:
    """Replace record ``name``: a dict value is merged into the current record."""
    target = path / name
    if name == "history.jsonl":
        rows = value if isinstance(value, list) else [value]
        base = {"kind": "epoch", "step": 0, "time": 0.1}
        text = "".join(json.dumps({**base, **r} if isinstance(r, dict) else r) + "\n" for r in rows)
        target.write_text(text)
    elif isinstance(value, bytes):
        target.write_bytes(value)
    else:
        if isinstance(value, dict) and target.exists():
            value = {**json.loads(target.read_text()), **value}
        target.write_text(json.dumps(value))


@pytest.mark.parametrize("case", CASES)
def test_a_record_of_the_wrong_shape_makes_the_run_corrupt(done_run, case):
    name, value, why = CASES[case]
    _write(done_run, name, value)
    run = runs.load_run(done_run)
    assert run.state == "corrupt" and why in run.problem, run.problem
    code, out, err = _cli("runs", "--runs", str(done_run.parents[1]))
    assert code == 0 and "Traceback" not in err
    row = out.splitlines()[1].split()
    assert row[0] == "corrupt" and row[-1] == done_run.name and why in out
    redo = _execute(done_run.parents[1])
    assert redo.state == "done" and not redo.skipped
    assert runs.load_run(done_run).state == "done"


def test_a_folder_without_config_is_listed_and_redone(tmp_path):
    out = tmp_path / "runs"
    run_dir = out / "tiny" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "notes.txt").write_text("left by hand")
    code, stdout, _ = _cli("runs", "--runs", str(out))
    row = stdout.splitlines()[1].split()
    assert code == 0 and row[0] == "corrupt" and row[-1] == run_dir.name
    assert "config.json: missing" in stdout
    assert _execute(out).state == "done" and not (run_dir / "notes.txt").exists()


def test_report_shows_corrupt_runs_with_the_reason(done_run, tmp_path):
    _write(done_run, "metrics.json", [1])
    code, _, err = _cli(
        "report", "--runs", str(done_run.parents[1]), "--out", str(tmp_path / "rep"),
        "--bench", str(tmp_path / "none"),
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert [r["state"] for r in results["runs"]] == ["corrupt"]
    assert "metrics.json: holds a JSON list" in (tmp_path / "rep" / "index.md").read_text()


def test_done_run_is_valid_under_every_schema(done_run):
    run = runs.load_run(done_run)
    assert run.state == "done" and run.problem == ""
    assert [r["step"] for r in run.history] == [0, 1]


def test_torn_last_history_line_is_not_corruption_but_a_torn_middle_one_is(done_run):
    history = done_run / "history.jsonl"
    whole = history.read_text()
    history.write_text(whole + '{"kind": "ep')
    assert runs.load_run(done_run).state == "done"
    history.write_text('{"kind": "ep\n' + whole)
    assert runs.load_run(done_run).problem == "history.jsonl line 1: not JSON"


def test_oversized_record_is_refused_without_reading_it(done_run):
    with open(done_run / "metrics.json", "wb") as f:
        f.truncate(records.MAX_RECORD_BYTES + 1)  # sparse: no disk used
    assert "more than" in runs.load_run(done_run).problem


# --- property: any JSON in any record file -------------------------------------------------

KEYS = [
    "state", "pid", "host", "heartbeat_unix", "started_at", "ended_at", "message", "job",
    "cell", "profile", "seed", "run_id", "config", "wall_seconds", "test_accuracy",
    "diverged_at_step", "kind", "step", "time", "x",
]  # fmt: skip


def random_json(rng: random.Random, depth: int = 0):
    """A random JSON value, biased towards the shapes and keys the records use."""
    kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, -1, 2**63, -(2**70), 10**400, rng.randint(-1000, 10**6)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e308, float("nan"), float("inf"), rng.random()])
    if kind == "str":
        return rng.choice(["", "done", "running", "ü\u0000\ud800"[: rng.randint(0, 3)], "x" * 9000])
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def mutate(rng: random.Random, good, name: str):
    """One change to a good record: a field's value, the whole value, or raw bytes."""
    roll = rng.random()
    if roll < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
    if roll < 0.4 or not isinstance(good, dict):
        return random_json(rng)
    changed = dict(good)
    key = rng.choice([*good, rng.choice(KEYS)])
    if rng.random() < 0.2:
        changed.pop(key, None)
    else:
        changed[key] = random_json(rng)
    return changed


def _record_text(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value).encode()  # NaN/Infinity as Python writes them: readers must cope


@pytest.mark.parametrize("name", RECORD_FILES)
def test_any_json_in_any_record_never_breaks_runs_report_or_rerun(tmp_path, name):
    rng = random.Random(f"records-{name}")
    out = tmp_path / "runs"
    template = _execute(out, "template").path
    good_lines = (template / name).read_bytes().splitlines()
    good = [json.loads(line) for line in good_lines] if name.endswith("l") else None
    good = good if good is not None else json.loads((template / name).read_bytes())
    variants = {}
    for i in range(40):
        run_dir = out / "tiny" / f"v{i:02d}"
        shutil.copytree(template, run_dir)
        _write(run_dir, "config.json", {"run_id": run_dir.name})  # its own, not "template"
        if name == "history.jsonl":
            rows = [mutate(rng, row, name) if rng.random() < 0.5 else row for row in good]
            data = b"".join(_record_text(r).replace(b"\n", b" ") + b"\n" for r in rows)
        elif name == "config.json":
            data = _record_text(mutate(rng, {**good, "run_id": run_dir.name}, name))
        else:
            data = _record_text(mutate(rng, good, name))
        (run_dir / name).write_bytes(data)
        variants[run_dir] = data
    shutil.rmtree(template)

    listed = {}
    for run_dir in variants:
        run = runs.load_run(run_dir)
        assert run.state in runs.STATES
        assert (run.state == "corrupt") == bool(run.problem)
        listed[run_dir] = run.state
    code, stdout, err = _cli("runs", "--runs", str(out))
    assert (
        code == 0 and "Traceback" not in err and len(stdout.splitlines()) == len(variants) + 2
    )  # header, counts
    code, _, err = _cli(
        "report", "--runs", str(out), "--out", str(tmp_path / "rep"),
        "--bench", str(tmp_path / "none"),
    )  # fmt: skip
    assert code == 0, err
    for run_dir, state in listed.items():
        redo = _execute(out, run_dir.name)
        if state in runs.FINAL_STATES:
            # Skipped as finished: then every record really fit its schema.
            assert redo.skipped and records.check_metrics(redo.metrics, state)
        else:
            assert redo.state == "done" and not redo.skipped
    assert sum(s == "corrupt" for s in listed.values()) >= 10  # the test did exercise it
