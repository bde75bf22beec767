"""Exclusive run claims: concurrent attempts of one run, abandoned claims, waiting, listing."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_suite import claims, runs
from mnist_suite.jobs import Job
from mnist_suite.plan import run_id


@dataclass(frozen=True)
class SmallConfig:
    steps: int = 3
    pause: float = 0.01  # seconds per step: long enough for attempts to overlap


def small_train(cfg: SmallConfig, run) -> dict:
    for step in range(cfg.steps):
        time.sleep(cfg.pause)
        run.log(step, "epoch", train_loss=1.0 / (step + 1))
    return {"test_accuracy": 0.5}


SMALL = Job("small", "test job", SmallConfig, small_train)


def _execute(out: Path, run_id: str, wait: float = 0.0, cfg: SmallConfig = SmallConfig()):
    return runs.execute(SMALL, "", cfg, seed=0, profile="quick", out=out, run_id=run_id, wait=wait)


def _worker(out: str, tasks, results, barrier) -> None:
    """Runs each task's run id right after every worker is ready: attempts start together."""
    while (run_id := tasks.get()) is not None:
        barrier.wait()
        o = _execute(Path(out), run_id)
        results.put((run_id, o.state, o.skipped, o.message))


def _check_single_writer(path: Path, outcomes: list[tuple]) -> None:
    ran = [o for o in outcomes if not o[2]]
    assert len(ran) == 1 and ran[0][1] == "done", outcomes
    for _, state, skipped, message in outcomes:
        if skipped:  # it either saw the claim or came after the end
            assert (state, message.split(" by ")[0]) in {
                ("running", "claimed"),
                ("done", "already recorded"),
            }, outcomes
    history = runs.read_history(path / "history.jsonl")
    assert [r["step"] for r in history] == [0, 1, 2]
    assert len(list((path / "tb").iterdir())) == 1  # one events file: one writer
    assert runs.load_run(path).state == "done"
    assert not list(path.parent.glob("*.claim*"))  # released, nothing left behind


def _pool(out: Path, n: int):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    queues = [ctx.Queue() for _ in range(n)]
    procs = [
        ctx.Process(target=_worker, args=(str(out), q, results, barrier), daemon=True)
        for q in queues
    ]
    for p in procs:
        p.start()
    return queues, results, procs


def _stop(queues, procs) -> None:
    for q in queues:
        q.put(None)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0


def test_two_concurrent_attempts_never_both_write_50_times(tmp_path):
    queues, results, procs = _pool(tmp_path, 2)
    try:
        for i in range(50):
            for q in queues:
                q.put(f"r{i}")
            outcomes = [results.get(timeout=60) for _ in queues]
            _check_single_writer(tmp_path / "small" / f"r{i}", outcomes)
    finally:
        _stop(queues, procs)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def _abandoned_claim(run_dir: Path) -> Path:
    """A claim left by a killed process of this machine."""
    path = claims.claim_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {**claims.machine(), "pid": _dead_pid(), "token": "dead", "heartbeat_unix": time.time()}
    path.write_text(json.dumps(info))
    return path


def _race_for_abandoned_claims(tmp_path: Path, prepare=None) -> None:
    """Four attempts at each of 20 runs whose claim a killed process left (``prepare(claim)``
    adds to it before they start): exactly one writes each run."""
    queues, results, procs = _pool(tmp_path, 4)
    try:
        for i in range(20):
            claim = _abandoned_claim(tmp_path / "small" / f"r{i}")
            if prepare is not None:
                prepare(claim)
            for q in queues:
                q.put(f"r{i}")
            outcomes = [results.get(timeout=60) for _ in queues]
            _check_single_writer(tmp_path / "small" / f"r{i}", outcomes)
    finally:
        _stop(queues, procs)


def test_four_breakers_of_one_abandoned_claim_let_exactly_one_run_20_times(tmp_path):
    _race_for_abandoned_claims(tmp_path)


def test_claim_of_a_dead_process_here_is_broken_at_once(tmp_path):
    _abandoned_claim(tmp_path / "small" / "r1")
    outcome = _execute(tmp_path, "r1")
    assert outcome.state == "done" and not outcome.skipped


def _foreign_claim(run_dir: Path, age: float) -> Path:
    path = claims.claim_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    beat = time.time() - age
    info = {"host": "node-7", "boot_id": "x", "pidns": "y", "pid": 4242, "heartbeat_unix": beat}
    path.write_text(json.dumps(info))
    os.utime(path, (beat, beat))
    return path


def test_live_foreign_claim_is_respected_and_named(tmp_path):
    done = _execute(tmp_path, "r1")
    before = {p: p.read_bytes() for p in done.path.rglob("*") if p.is_file()}
    _foreign_claim(done.path, age=5)
    forced = runs.execute(
        SMALL, "", SmallConfig(), seed=0, profile="quick", out=tmp_path, run_id="r1", force=True
    )
    assert forced.skipped and forced.state == "running"
    assert "pid 4242 on node-7" in forced.message
    assert {p: p.read_bytes() for p in done.path.rglob("*") if p.is_file()} == before


def test_cli_second_attempt_exits_1_with_one_line(tmp_path, capsys, monkeypatch):
    from mnist_suite import cli

    monkeypatch.setattr("mnist_suite.jobs.get_job", lambda name: SMALL)
    run_dir = tmp_path / "small" / run_id(SMALL, "", SmallConfig(), "quick", 0)
    _foreign_claim(run_dir, age=1)
    code = cli.main(["run", "small", "--profile", "quick", "--runs", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1 and "claimed by pid 4242 on node-7" in err
    assert not run_dir.exists()


def test_foreign_claim_with_an_old_heartbeat_is_broken(tmp_path):
    _foreign_claim(tmp_path / "small" / "r1", age=claims.ABANDONED_SECONDS + 5)
    assert _execute(tmp_path, "r1").state == "done"


def test_second_attempt_waits_for_the_first_then_skips(tmp_path):
    (tmp_path / "small").mkdir()
    claim = claims.acquire(claims.claim_path(tmp_path / "small" / "r1"))
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def second():
        o = _execute(tmp_path, "r1", wait=30)
        results.put((o.state, o.skipped, o.message))

    proc = ctx.Process(target=second)
    proc.start()
    time.sleep(0.5)
    assert runs.load_run(tmp_path / "small" / "r1").state == "running"  # claimed, no folder
    claim.release()
    assert results.get(timeout=60) == ("done", False, "")
    proc.join(timeout=30)


def test_a_run_being_written_lists_as_running_not_corrupt(tmp_path):
    run_dir = tmp_path / "small" / "r1"
    run_dir.mkdir(parents=True)  # created, config.json not written yet
    claim = claims.acquire(claims.claim_path(run_dir))
    try:
        assert runs.load_run(run_dir).state == "running"
    finally:
        claim.release()
    assert runs.load_run(run_dir).state == "corrupt"


def test_heartbeat_of_a_broken_claim_never_touches_the_new_one(tmp_path):
    path = claims.claim_path(tmp_path / "r1")
    old = claims.acquire(path)
    os.rename(path, tmp_path / "aside")  # as a breaker would
    new = claims.acquire(path)
    old.beat()
    assert json.loads(path.read_text())["token"] == new.info["token"]
    assert not old.held() and new.held()
    old.release()
    assert path.exists()
    new.release()
    assert not path.exists()


def test_claims_and_temp_names_are_not_runs(tmp_path):
    _execute(tmp_path, "r1")
    claims.claim_path(tmp_path / "small" / "r2").write_text("{}")
    (tmp_path / "small" / ".r3.tmp").mkdir()
    assert [p.name for p in runs.find_runs(tmp_path)] == ["r1"]


@pytest.mark.slow
def test_two_cli_processes_started_on_one_run_write_it_once(tmp_path, mnist):
    argv = [sys.executable, "-m", "mnist_suite", "run", "softmax-original", "--profile", "quick"]
    argv += ["--set", "n_train=3000", "--set", "eval_every=500"]
    for attempt in range(3):
        runs_dir = tmp_path / f"a{attempt}"
        procs = [
            subprocess.Popen(
                [*argv, "--runs", str(runs_dir)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
        for _, err, code in results:
            assert "Traceback" not in err
            # Ran it (0), came after it ended (0, skipped), or was turned away while it ran (1).
            assert code == 0 or (code == 1 and "claimed by pid" in err), err
        (run_dir,) = runs.find_runs(runs_dir)
        run = runs.load_run(run_dir)
        assert run.state == "done"
        steps = [(r["kind"], r["step"]) for r in run.history]
        assert len(steps) == len(set(steps)) > 0  # every row once
        assert len(list((run_dir / "tb").iterdir())) == 1


# --- stale turns: a breaker's turn file never blocks a run for ever ---------------------------


def _turn(claim: Path) -> Path:
    return claim.with_name(f".{claim.name}.break")


def _plant_turn(turn: Path, kind: str, outside: Path) -> None:
    """What a breaker that died, or anyone who can write the folder, may leave as the turn."""
    future = time.time() + 3600
    if kind in ("empty, mtime an hour ahead", "dead breaker here, mtime an hour ahead"):
        owner = {**claims.machine(), "pid": _dead_pid(), "start": "1"}
        turn.write_text(json.dumps(owner) if kind.startswith("dead") else "")
        os.utime(turn, (future, future))
    elif kind == "other host's breaker, mtime an hour ahead":
        turn.write_text(json.dumps({"host": "node-7", "boot_id": "x", "pidns": "y", "pid": 42}))
        os.utime(turn, (future, future))
    elif kind == "folder with a file":
        turn.mkdir()
        (turn / "keep").write_text("mine")
        os.utime(turn, (future, future))
    elif kind == "fifo":
        os.mkfifo(turn)
    else:  # a symbolic link to a file elsewhere
        outside.write_text("mine")
        turn.symlink_to(outside)


STALE_TURNS = [
    "empty, mtime an hour ahead",
    "dead breaker here, mtime an hour ahead",
    "other host's breaker, mtime an hour ahead",
    "folder with a file",
    "fifo",
    "symlink",
]


@pytest.mark.parametrize("kind", STALE_TURNS)
def test_a_stale_turn_is_moved_aside_and_the_run_goes_ahead(tmp_path, capsys, monkeypatch, kind):
    """An abandoned claim behind a turn no live breaker holds: the run is written at once, with
    no claim wait; nothing the turn held or pointed at is lost."""
    from mnist_suite import cli

    monkeypatch.setattr("mnist_suite.jobs.get_job", lambda name: SMALL)
    monkeypatch.delenv(runs.CLAIM_WAIT_ENV, raising=False)
    run_dir = tmp_path / "runs" / "small" / run_id(SMALL, "", SmallConfig(), "quick", 0)
    turn = _turn(_abandoned_claim(run_dir))
    outside = tmp_path / "outside"
    _plant_turn(turn, kind, outside)
    code = cli.main(["run", "small", "--profile", "quick", "--runs", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and out.splitlines()[-1].startswith("done "), (out, err)
    assert runs.load_run(run_dir).state == "done"
    left = [p for p in run_dir.parent.iterdir() if "claim" in p.name]
    if kind == "folder with a file":  # moved aside under a hidden name, its file kept
        (aside,) = left
        assert aside.name.startswith(".") and (aside / "keep").read_text() == "mine"
    else:
        assert left == []
    if kind == "symlink":
        assert outside.read_text() == "mine"  # the link went, not its target


def test_four_attempts_behind_a_stale_turn_let_exactly_one_run_20_times(tmp_path):
    """Breakers racing to move a dead breaker's turn aside and take their own never make two
    writers: a breaker whose turn was moved aside meanwhile moves no claim."""
    _race_for_abandoned_claims(
        tmp_path,
        lambda claim: _plant_turn(
            _turn(claim), "dead breaker here, mtime an hour ahead", tmp_path / "x"
        ),
    )


def test_a_live_breakers_turn_is_respected_and_the_wait_is_bounded(tmp_path):
    """A turn held by a live process of this machine is never moved, whatever its mtime; the
    attempt gives up at the end of its claim wait."""
    run_dir = tmp_path / "small" / "r1"
    turn = _turn(_abandoned_claim(run_dir))
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        owner = {**claims.machine(), "pid": sleeper.pid, "start": claims._start_ticks(sleeper.pid)}
        turn.write_text(json.dumps(owner))
        past = time.time() - 3600
        os.utime(turn, (past, past))
        start = time.monotonic()
        outcome = _execute(tmp_path, "r1", wait=1.0)
        assert outcome.skipped and outcome.state == "running", outcome
        assert 1.0 <= time.monotonic() - start < 10
        assert json.loads(turn.read_text())["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _execute(tmp_path, "r1").state == "done"  # its breaker gone: moved aside at once


def test_a_foreign_claim_with_a_heartbeat_from_the_future_is_broken(tmp_path):
    """A heartbeat further ahead than the silence allowed is no sign of a live owner."""
    path = _foreign_claim(tmp_path / "small" / "r1", age=-(claims.ABANDONED_SECONDS + 60))
    assert _execute(tmp_path, "r1").state == "done"
    assert not path.exists()
