"""Run records: states, atomicity, resume, dead owners, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnist_suite import runs
from mnist_suite.errors import Diverged
from mnist_suite.jobs import Job


@dataclass(frozen=True)
class TinyConfig:
    steps: int = 3
    mode: str = "ok"  # ok | raise | nan | interrupt


def tiny_train(cfg: TinyConfig, run) -> dict:
    for step in range(cfg.steps):
        loss = float("nan") if cfg.mode == "nan" and step == 1 else 1.0 / (step + 1)
        run.check_finite(step, loss)
        run.log(step, "epoch", train_loss=loss)
        if cfg.mode == "raise":
            raise RuntimeError("boom\nsecond line")
        if cfg.mode == "interrupt":
            raise KeyboardInterrupt("SIGTERM")
    run.save_arrays("weights", w=np.arange(3.0))
    run.save_json("extra", {"a": np.float32(1.5)})
    return {"test_accuracy": 0.5}


TINY = Job("tiny", "test job", TinyConfig, tiny_train)


def execute(tmp_path, cfg=TinyConfig(), force=False, run_id="r1"):
    return runs.execute(
        TINY, "", cfg, seed=0, profile="quick", out=tmp_path, run_id=run_id, force=force
    )


def test_done_run_directory_is_complete(tmp_path):
    outcome = execute(tmp_path)
    path = tmp_path / "tiny" / "r1"
    assert outcome.state == "done" and outcome.path == path
    names = {p.name for p in path.iterdir()}
    assert names == {
        "config.json",
        "status.json",
        "metrics.json",
        "history.jsonl",
        "tb",
        "artifacts",
    }
    config = json.loads((path / "config.json").read_text())
    assert config["config"] == {"steps": 3, "mode": "ok"} and config["seed"] == 0
    assert {"machine_info", "commit_info", "versions", "datetime"} <= set(config)
    status = json.loads((path / "status.json").read_text())
    assert status["state"] == "done" and status["ended_at"] and status["pid"] == os.getpid()
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == 0.5 and metrics["wall_seconds"] >= 0
    assert [r["train_loss"] for r in runs.read_history(path / "history.jsonl")] == [1, 0.5, 1 / 3]
    assert not list(path.rglob(".*.tmp"))  # no temp files left behind


def test_failed_run_records_one_line_message(tmp_path):
    outcome = execute(tmp_path, TinyConfig(mode="raise"))
    assert outcome.state == "failed" and outcome.message == "RuntimeError: boom"
    assert runs.load_run(outcome.path).state == "failed"


def test_diverged_run_records_the_step(tmp_path):
    outcome = execute(tmp_path, TinyConfig(mode="nan"))
    assert outcome.state == "diverged" and outcome.metrics["diverged_at_step"] == 1
    status = json.loads((outcome.path / "status.json").read_text())
    assert status["diverged_at_step"] == 1
    assert json.loads((outcome.path / "metrics.json").read_text())["final_train_loss"] is None


def test_interrupt_is_recorded_and_propagates(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        execute(tmp_path, TinyConfig(mode="interrupt"))
    run = runs.load_run(tmp_path / "tiny" / "r1")
    assert run.state == "interrupted" and "SIGTERM" in run.status["message"]
    assert run.metrics == {}


def test_resume_skips_done_and_reruns_failed(tmp_path):
    first = execute(tmp_path)
    again = execute(tmp_path)
    assert again.skipped and again.state == "done" and again.metrics == first.metrics
    assert not execute(tmp_path, force=True).skipped
    execute(tmp_path, TinyConfig(mode="raise"), run_id="r2")
    rerun = execute(tmp_path, TinyConfig(), run_id="r2")
    assert rerun.state == "done" and not rerun.skipped


def test_dead_owner_is_read_as_interrupted(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(proc.stdout)
    base = {"state": "running", "host": os.uname().nodename, "heartbeat_unix": time.time()}
    assert runs.effective_state({**base, "pid": os.getpid()}) == "running"
    assert runs.effective_state({**base, "pid": dead_pid}) == "interrupted"
    stale = {
        **base,
        "pid": os.getpid(),
        "host": "elsewhere",
        "heartbeat_unix": time.time() - runs.ABANDONED_SECONDS - 1,
    }
    assert runs.effective_state(stale) == "interrupted"
    assert runs.effective_state({**stale, "heartbeat_unix": time.time()}) == "running"
    assert runs.effective_state(None) == "missing"


def test_live_running_run_is_not_clobbered(tmp_path):
    path = tmp_path / "tiny" / "r1"
    path.mkdir(parents=True)
    runs.atomic_write_json(
        path / "status.json",
        {
            "state": "running",
            "pid": os.getpid(),
            "host": os.uname().nodename,
            "heartbeat_unix": time.time(),
        },
    )
    outcome = execute(tmp_path)
    assert outcome.skipped and outcome.state == "running" and "marked running" in outcome.message
    assert [p.name for p in path.iterdir()] == ["status.json"]


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    path = tmp_path / "m.json"
    runs.atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        runs.atomic_write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    runs.atomic_write_json(path, {"loss": float("nan"), "v": np.float64(2.0)})
    assert json.loads(path.read_text()) == {"loss": None, "v": 2.0}


def test_object_arrays_are_not_saved(tmp_path):
    with pytest.raises(TypeError, match="object array"):
        runs.atomic_save_npz(tmp_path / "a.npz", x=np.array([{}], dtype=object))


def test_torn_history_line_is_skipped(tmp_path):
    rows = [{"kind": "epoch", "step": i, "time": 0.5} for i in range(2)]
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "history.jsonl").write_text(lines + '{"ste')
    assert runs.read_history(tmp_path / "history.jsonl") == rows


def test_diverged_exception_message():
    assert str(Diverged(7, float("inf"))) == "loss became inf at step 7"


# Half the training set, evaluated every 1000 samples: logs within a second, runs for several.
JOB_ARGV = [sys.executable, "-m", "mnist_suite", "run", "softmax-original"]
JOB_ARGV += ["--set", "n_train=30000", "--set", "eval_every=1000"]


def _start_job(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """softmax-original in a child process, returned once it has logged its first evaluation."""
    env = {**os.environ, "MNIST_SUITE_RUNS": str(tmp_path)}
    proc = subprocess.Popen(
        JOB_ARGV, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        history = list(tmp_path.glob("softmax-original/*/history.jsonl"))
        if history and history[0].stat().st_size > 0:
            return proc, history[0].parent
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the job did not start logging within 60 s")


@pytest.mark.slow
def test_sigterm_marks_interrupted_and_exits_130(tmp_path, mnist):
    proc, path = _start_job(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    run = runs.load_run(path)
    assert run.status["state"] == "interrupted" and "SIGTERM" in run.status["message"]
    assert not (path / "metrics.json").exists()


@pytest.mark.slow
def test_sigkill_leaves_running_which_readers_see_as_interrupted(tmp_path, mnist):
    proc, path = _start_job(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert json.loads((path / "status.json").read_text())["state"] == "running"
    assert runs.load_run(path).state == "interrupted"
    # resuming re-runs it from scratch rather than refusing or skipping it
    env = {**os.environ, "MNIST_SUITE_RUNS": str(tmp_path)}
    done = subprocess.run(JOB_ARGV, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["done", str(path)]
    assert runs.load_run(path).state == "done"
