"""Hostile or careless input, faults and concurrency: one line and a clean exit, nothing lost.

Each case states what a user could do and pins the outcome: exit 2 (bad usage) or 1 (a fault
of the machine) with one ``error:`` line and no traceback, nothing finished deleted, memory
bounded where the input could grow it. The generated scripts have their own property test in
``test_script_injection.py``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mnist_suite import claims, limits, records, runs
from mnist_suite.batch import item_states
from mnist_suite.jobs import Job
from mnist_suite.plan import build_plan, parse_seeds
from mnist_suite.report import MARKER, build_report
from tests.test_limits import assert_refused, run_bounded
from tests.test_outputs import done_softmax, mount, one_line_error, snapshot  # noqa: F401

QUICK = ["softmax-original", "--profile", "quick", "--set", "n_train=1000"]


@dataclass(frozen=True)
class TinyConfig:
    steps: int = 2


def _tiny(cfg: TinyConfig, run) -> dict:
    for step in range(cfg.steps):
        run.log(step, "epoch", train_loss=1.0, test_accuracy=0.5)
    return {"test_accuracy": 0.5}


TINY = Job("tiny", "test job", TinyConfig, _tiny)


def _execute(out: Path, run_id: str = "r1", cell: str = "", train=_tiny, **kw) -> runs.Outcome:
    job = Job("tiny", "test job", TinyConfig, train)
    return runs.execute(job, cell, TinyConfig(), seed=0, profile="quick", out=out, run_id=run_id,
                        **kw)  # fmt: skip


def _subprocess(*argv: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_suite", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


# --- bounds before work -------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--plan", "/dev/zero"],
        ["plan", "--plan", "/dev/zero"],
        ["predict", "--weights", "/dev/zero", "--index", "0", "--out", "{tmp}/x.png"],
    ],
    ids=["run-plan", "plan-plan", "predict-weights"],
)
def test_a_device_as_input_is_refused_unread(tmp_path, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, err, peak = run_bounded({"argv": argv})
    assert_refused(code, err, peak, "/dev/zero")


@pytest.mark.parametrize("flag", ["--plan", "--weights", "--data"])
def test_a_fifo_as_input_is_refused_without_blocking(tmp_path, flag):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    argv = {
        "--plan": ["run", "--plan", str(fifo)],
        "--weights": ["predict", "--weights", str(fifo), "--index", "0", "--out", "x.png"],
        "--data": ["data", "--data", str(fifo), "--offline"],
    }[flag]
    proc = _subprocess(*argv, timeout=60)
    one_line_error(proc.returncode, proc.stderr)
    assert str(fifo) in proc.stderr


def test_many_seed_ranges_are_refused_at_once(run_cli):
    ranges = ",".join(f"{k * 10000}-{k * 10000 + 9999}" for k in range(10))
    start = time.perf_counter()
    code, _, err = run_cli("plan", "softmax", "--seeds", ranges)
    one_line_error(code, err)
    assert f"at most {limits.MAX_SEEDS} seeds" in err
    assert time.perf_counter() - start < 5


def test_seed_parsing_is_linear():
    start = time.perf_counter()
    seeds = parse_seeds("0-9999")
    assert len(seeds) == 10_000 and time.perf_counter() - start < 1.0
    with pytest.raises(limits.ConfigError):
        parse_seeds("9" * 5000)  # beyond int()'s digit limit: refused by the pattern


def test_a_huge_grid_is_refused_before_it_is_built():
    values = ",".join(str(i + 1) for i in range(1000))
    argv = ["plan", "sgd-grid", "--set", f"lrs={values}", "--set", f"batch_sizes={values}"]
    code, err, peak = run_bounded({"argv": argv})
    assert_refused(code, err, peak, f"more than {limits.MAX_CELLS}")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "mlp-fast", "--set", "epochs=1000000000"], "at most"),
        (["run", "mlp-fast", "--set", "widths=100000,100000"], "units per layer"),
        (["run", "mlp-fast", "--set", "widths=100000"], "units per layer"),
        (["run", "mlp-fast", "--set", "widths=8000,8000"], "parameters"),
        (["run", "mlp-original", "--set", "iterations=100000000000"], "at most"),
        (["cells", "sgd-grid", "--set", "nets=100000-100000"], "units per layer"),
        (["run", "softmax", "--set", "epochs=" + "9" * 5000], "too many digits"),
    ],
)
def test_configs_beyond_the_caps_are_refused_before_a_run_folder(run_cli, tmp_path, argv, needle):
    code, _, err = run_cli(*argv)
    one_line_error(code, err)
    assert needle in err
    assert not (tmp_path / "runs").exists()


def test_a_config_needing_more_memory_than_the_machine_is_refused(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "machine_memory", lambda: 64 << 20)
    code, _, err = run_cli("run", *QUICK)
    one_line_error(code, err)
    assert "more than this machine's 64 MB" in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["plan", "softmax", "--seed", "99999999999999"], "seed 99999999999999"),
        (["train", *QUICK, "--workers", "-5"], "--workers"),
        (["train", *QUICK, "--workers", "100000"], "--workers"),
        (["train", *QUICK, "--threads", "-1"], "--threads"),
        (["runs", "--job", "../.."], "job '../..'"),
    ],
)
def test_counts_and_names_out_of_range_are_refused(run_cli, tmp_path, argv, needle):
    code, _, err = run_cli(*argv, "--runs", str(tmp_path / "runs"))
    one_line_error(code, err)
    assert needle in err and not (tmp_path / "runs").exists()


def test_duplicate_grid_values_are_refused(run_cli):
    for command in ("plan", "train", "run"):
        code, _, err = run_cli(command, "sgd-lr-sweep", "--set", "lrs=0.1,0.1")
        one_line_error(code, err)
        assert "lr0.1 appears twice" in err


# --- engine indexes and saved plans -------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("JOB_COMPLETION_INDEX", "²"),
        ("SLURM_ARRAY_TASK_ID", "9" * 5000),
        ("MNIST_SUITE_INDEX", "-1"),
    ],
    ids=["superscript", "5000-digits", "negative"],
)
def test_a_bad_engine_index_is_one_line(run_cli, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    code, _, err = run_cli("run", *QUICK)
    one_line_error(code, err)
    assert f"${variable}" in err


@pytest.mark.parametrize(
    "field, value",
    [("cell_index", "0"), ("job", ["softmax"]), ("seed", -1), ("flavour", "$(touch x)"),
     ("run_id", "../../etc"), ("cell_index", 7), ("profile", "slow"), ("overrides", ["lr"])],
)  # fmt: skip
def test_a_saved_plan_is_checked_field_by_field(run_cli, tmp_path, field, value):
    plan = tmp_path / "plan.json"
    code, _, err = run_cli("plan", *QUICK, "--save", str(plan))
    assert code == 0, err
    doc = json.loads(plan.read_text())
    doc["items"][0][field] = value
    plan.write_text(json.dumps(doc))
    code, _, err = run_cli("run", "--plan", str(plan), "--runs", str(tmp_path / "runs"))
    one_line_error(code, err)
    assert "plan item 0" in err and not (tmp_path / "runs").exists()


def test_too_many_plan_items_are_refused(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_PLAN_ITEMS", 3)
    code, _, err = run_cli("plan", "softmax", "--seeds", "0-3")
    one_line_error(code, err)
    assert "more than 3" in err


# --- paths that are not what they seem ----------------------------------------------------


def test_symlink_loops_as_folders_are_one_line(run_cli, tmp_path, done_softmax):  # noqa: F811
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    runs_dir = done_softmax.parents[1]
    cases = [
        ("train", *QUICK, "--runs", str(loop)),
        ("run", *QUICK, "--runs", str(loop)),
        ("report", "--runs", str(loop), "--out", str(tmp_path / "rep")),
        ("report", "--runs", str(runs_dir), "--out", str(loop), "--bench", str(tmp_path)),
        ("runs", "--runs", str(loop)),
    ]
    for argv in cases:
        code, _, err = run_cli(*argv)
        assert "Traceback" not in err
        if code:
            assert code in (1, 2) and err.count("\n") == 1 and err.startswith("error: "), err


def test_train_into_a_file_or_a_read_only_mount_is_one_line(run_cli, tmp_path, mount):  # noqa: F811
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run_cli("train", *QUICK, "--runs", str(afile))
    one_line_error(code, err)
    read_only = mount(tmp_path / "ro", "ro,size=1m")
    code, _, err = run_cli("train", *QUICK, "--runs", str(read_only / "runs"))
    one_line_error(code, err, expected_code=1)  # a fault of the machine, not of the usage
    assert "not writable" in err


def test_plan_save_and_slurm_logs_on_a_read_only_mount_are_one_line(run_cli, tmp_path, mount):  # noqa: F811
    read_only = mount(tmp_path / "ro", "ro,size=1m")
    code, _, err = run_cli("plan", *QUICK, "--save", str(read_only / "plan.json"))
    one_line_error(code, err, expected_code=1)
    code, _, err = run_cli("slurm", *QUICK, "--mode", "python", "--logs", str(read_only / "l"))
    one_line_error(code, err, expected_code=1)


def test_report_on_a_full_disk_is_one_line_and_the_old_report_survives(
    run_cli,
    tmp_path,
    mount,  # noqa: F811
    done_softmax,  # noqa: F811
):
    disk = mount(tmp_path / "disk", "size=4m")
    out = disk / "rep"
    argv = ["report", "--runs", str(done_softmax.parents[1]), "--bench", str(tmp_path / "none")]
    code, _, err = run_cli(*argv, "--out", str(out))
    assert code == 0, err
    before = snapshot(out)
    with open(disk / "filler", "wb") as f:  # leave too little for a second report
        try:
            while True:
                f.write(b"\0" * (64 << 10))
                f.flush()
        except OSError:
            pass
    code, _, err = run_cli(*argv, "--out", str(out))
    one_line_error(code, err, expected_code=1)
    assert snapshot(out) == before
    assert not list(disk.glob(".rep.*"))  # its temp folder went with it


# --- outputs never delete what the suite did not write -------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink"])
def test_an_output_file_never_replaces_a_special_file(run_cli, tmp_path, kind):
    import stat

    from mnist_suite.files import atomic_write_bytes

    target = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a /dev/null of our own
    else:
        target.symlink_to(tmp_path / "elsewhere")
    before = os.lstat(target)
    code, _, err = run_cli("plan", *QUICK, "--save", str(target))
    one_line_error(code, err)
    with pytest.raises(OSError, match="not a regular file"):
        atomic_write_bytes(target, b"x")
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert not list(tmp_path.glob(".out.*"))  # no temp file left beside it


def test_report_never_replaces_a_folder_it_did_not_write(run_cli, tmp_path, done_softmax):  # noqa: F811
    argv = ["report", "--runs", str(done_softmax.parents[1]), "--bench", str(tmp_path / "none")]
    project = tmp_path / "P"
    (project / "src").mkdir(parents=True)
    (project / "results.json").write_text("{}")
    (project / "src" / "main.py").write_text("x")
    code, _, err = run_cli(*argv, "--out", str(project))
    one_line_error(code, err)
    assert (project / "src" / "main.py").read_text() == "x"
    # New, empty and marked folders are fine; the marker is in every report.
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        code, _, err = run_cli(*argv, "--out", str(out))
        assert code == 0 and (out / MARKER).is_file(), err
    code, _, err = run_cli(*argv, "--out", str(tmp_path / "new"))
    assert code == 0, err
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "new")
    code, _, err = run_cli(*argv, "--out", str(link))
    one_line_error(code, err)
    assert "symbolic link" in err


def test_report_escapes_html_from_run_names_in_markdown(tmp_path):
    _execute(tmp_path / "runs", "x", cell="<script>alert(1)</script>")
    build_report(tmp_path / "runs", None, tmp_path / "rep")
    text = (tmp_path / "rep" / "index.md").read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<script>alert" not in (tmp_path / "rep" / "index.html").read_text()


def test_an_out_of_range_metric_makes_the_run_corrupt_not_the_report(run_cli, tmp_path):
    from mnist_suite.files import atomic_write_json

    path = _execute(tmp_path / "runs").path
    metrics = json.loads((path / "metrics.json").read_text())
    atomic_write_json(path / "metrics.json", {**metrics, "test_accuracy": 1e308})
    run = runs.load_run(path)
    assert run.state == "corrupt" and "test_accuracy" in run.problem
    results = build_report(tmp_path / "runs", None, tmp_path / "rep")
    notes = [n for s in results["sections"] for n in s["notes"]]
    assert not any("could not be built" in n for n in notes), notes


# --- records never outgrow their reader ----------------------------------------------------


def test_a_long_history_is_read_up_to_the_cap_and_never_corrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_HISTORY_BYTES", 1 << 16)
    path = _execute(tmp_path / "runs").path
    row = json.dumps({"kind": "batch", "step": 1, "time": 0.5, "loss": 0.25}) + "\n"
    with open(path / "history.jsonl", "a") as f:
        f.write(row * (2 * (1 << 16) // len(row)))  # twice the cap, every row valid
    before = snapshot(path)
    run = runs.load_run(path)
    assert run.state == "done" and run.problem == ""
    assert 0 < sum(len(json.dumps(r)) + 1 for r in run.history) <= 1 << 16
    again = _execute(tmp_path / "runs")
    assert again.skipped and again.state == "done" and snapshot(path) == before


def test_the_history_writer_stops_at_the_readers_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_HISTORY_BYTES", 4096)

    def chatty(cfg, run):
        for step in range(1000):
            run.log(step, "batch", loss=1.0)
        return {"test_accuracy": 0.5}

    path = _execute(tmp_path / "runs", train=chatty).path
    assert (path / "history.jsonl").stat().st_size <= 4096
    run = runs.load_run(path)
    assert run.state == "done" and run.history[-1]["kind"] == records.HISTORY_FULL


def test_a_record_beyond_its_cap_is_not_written(tmp_path):
    def huge(cfg, run):
        return {"test_accuracy": 0.5, "notes": ["x" * 4000] * (records.MAX_RECORD_BYTES // 4000)}

    outcome = _execute(tmp_path / "runs", train=huge)
    assert outcome.state == "failed" and "more than" in outcome.message


# --- claims ---------------------------------------------------------------------------------


def _claim_of(pid: int, path: Path) -> None:
    info = {**claims.machine(), "pid": pid, "start": claims._start_ticks(pid), "token": "t"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**info, "heartbeat_unix": time.time()}))


def test_an_owner_dying_during_the_wait_is_noticed_then(tmp_path):
    run_dir = tmp_path / "runs" / "tiny" / "r1"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _claim_of(sleeper.pid, claims.claim_path(run_dir))
        start = time.monotonic()
        killer = subprocess.Popen(["sh", "-c", f"sleep 6; kill {sleeper.pid}"])
        outcome = _execute(tmp_path / "runs", wait=30)
        killer.wait()
        assert outcome.state == "done" and not outcome.skipped
        assert 5 < time.monotonic() - start < 20  # broken once dead, not at the end of the wait
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("kind", ["dangling-symlink", "symlink-to-file", "folder", "fifo"])
def test_a_claim_that_is_not_a_regular_file_is_abandoned(tmp_path, kind):
    path = claims.claim_path(tmp_path / "runs" / "tiny" / "r1")
    path.parent.mkdir(parents=True)
    if kind == "dangling-symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "symlink-to-file":
        (tmp_path / "target").write_text("{}")
        path.symlink_to(tmp_path / "target")
    elif kind == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    outcome = _execute(tmp_path / "runs")
    assert outcome.state == "done" and not outcome.skipped
    left = [p.name for p in path.parent.iterdir() if "claim" in p.name]
    assert left == []  # nothing left behind (a folder that was not empty would stay, hidden)
    if kind == "symlink-to-file":
        assert (tmp_path / "target").read_text() == "{}"  # the link went, not its target


@pytest.mark.parametrize("value", ["1e300", "nan", "inf", "-1", "3601", "x", "1" * 40])
def test_claim_wait_is_validated_and_capped(run_cli, monkeypatch, value):
    monkeypatch.setenv(runs.CLAIM_WAIT_ENV, value)
    code, _, err = run_cli("run", *QUICK)
    one_line_error(code, err)
    assert "MNIST_SUITE_CLAIM_WAIT" in err


# --- generators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["k8s", "--parallelism", "-3"], "--parallelism"),
        (["k8s", "--parallelism", "0"], "--parallelism"),
        (["k8s", "--backoff-limit-per-index", "-1"], "--backoff-limit-per-index"),
        (["k8s", "--name", "n" * 70], "--name"),
        (["k8s", "--name", "Bad_Name"], "--name"),
        (["k8s", "--namespace", "Bad NS!"], "--namespace"),
        (["k8s", "--cpu", "-1"], "--cpu"),
        (["k8s", "--memory", "lots"], "--memory"),
        (["k8s", "--run-as-user", "0"], "--run-as-user"),
        (["slurm", "--parallelism", "-3"], "--parallelism"),
        (["slurm", "--cpus", "-2"], "--cpus"),
        (["slurm", "--memory", "4 G"], "memory '4 G'"),
        (["slurm", "--time", "tomorrow"], "time 'tomorrow'"),
        (["slurm", "--partition", "a b"], "--partition"),
    ],
)
def test_generators_refuse_nonsense(run_cli, tmp_path, argv, needle):
    logs = ["--logs", str(tmp_path / "l")] if argv[0] == "slurm" else []
    code, _, err = run_cli(*argv, "softmax", "--profile", "quick", *logs)
    one_line_error(code, err)
    assert needle in err


def test_job_names_are_distinct_per_flavour_at_the_longest_name(run_cli):
    import yaml

    code, out, err = run_cli("k8s", "softmax", "sgd-original", "--profile", "quick",
                             "--name", "n" * 38)  # fmt: skip
    assert code == 0, err
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(out)]
    assert len(names) == len(set(names)) == 2 and all(len(n) <= 63 for n in names)


# --- the pool: signals and logs (real subprocesses) ----------------------------------------


def _pool(runs_dir: Path, seeds: str = "0-2", workers: int = 2) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mnist_suite", "train", "mlp-original", "--profile", "quick",
            "--seeds", seeds, "--set", "iterations=200000", "--workers", str(workers),
            "--runs", str(runs_dir)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pids: list[int]) -> list[int]:
    """The processes of ``pids`` still running (zombies awaiting their reaper do not count)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _wait_for_children(proc: subprocess.Popen, n: int, runs_dir: Path) -> list[int]:
    """The pool's ``n`` items, once each has recorded itself ``running`` (past imports and data
    loading: a signal then finds a run to mark interrupted, however loaded the machine)."""
    deadline = time.monotonic() + 180
    while len(kids := _children(proc.pid)) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    while time.monotonic() < deadline:
        running = [p for p in runs_dir.glob("*/*/status.json") if '"running"' in p.read_text()]
        if len(running) >= n:
            break
        time.sleep(0.2)
    return kids


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals, code",
    [((signal.SIGHUP,), 129), ((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130)],
    ids=["SIGHUP", "SIGTERM", "SIGINT-twice"],
)
def test_a_stopped_pool_takes_every_item_with_it(tmp_path, signals, code):
    runs_dir = tmp_path / "runs"
    proc = _pool(runs_dir)
    kids = _wait_for_children(proc, 2, runs_dir)
    assert len(kids) == 2
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.3)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    name = signal.Signals(signals[0]).name
    assert f"stopping on {name}: 2 running items end as interrupted, 1 not started" in out
    assert "Traceback" not in out
    assert _alive(kids) == []
    items = build_plan(["mlp-original"], profile="quick", seeds=(0, 1, 2),
                       overrides=("iterations=200000",))  # fmt: skip
    assert item_states(items, runs_dir) == ["interrupted", "interrupted", "missing"]


@pytest.mark.slow
def test_items_never_outlive_a_killed_pool(tmp_path):
    proc = _pool(tmp_path / "runs", seeds="0-1")
    kids = _wait_for_children(proc, 2, tmp_path / "runs")
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(kids) == []


@pytest.mark.slow
def test_item_logs_are_appended_per_attempt_and_say_skipped(tmp_path, mnist):
    from mnist_suite.launch.local import log_path

    runs_dir = tmp_path / "runs"
    argv = [sys.executable, "-m", "mnist_suite", "train", *QUICK, "--workers", "1",
            "--runs", str(runs_dir)]  # fmt: skip
    first = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    second = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and ": skipped (done, already recorded)" in second.stdout
    (item,) = build_plan(["softmax-original"], profile="quick", overrides=("n_train=1000",))
    log = log_path(runs_dir / ".logs", item).read_text()
    assert log.count("==== ") == 2 and "epoch" in log and "skipped" in log.splitlines()[-1]


def two_pools(runs_dir: Path, claim_wait: str, stderr=subprocess.STDOUT) -> tuple[list, list]:
    """Two pools started at once on one runs folder (seeds 0-1 of QUICK, one worker each):
    the processes and their (stdout, stderr) once both have ended."""
    argv = [sys.executable, "-m", "mnist_suite", "train", *QUICK, "--seeds", "0-1",
            "--workers", "1", "--runs", str(runs_dir)]  # fmt: skip
    env = {**os.environ, runs.CLAIM_WAIT_ENV: claim_wait}
    pools = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
             for _ in range(2)]  # fmt: skip
    return pools, [p.communicate(timeout=300) for p in pools]


@pytest.mark.slow
def test_two_pools_at_once_keep_both_logs_and_write_each_run_once(tmp_path, mnist):
    from mnist_suite.launch.local import log_path

    runs_dir = tmp_path / "runs"
    pools, ended = two_pools(runs_dir, "120")
    outs = [out for out, _ in ended]
    assert [p.returncode for p in pools] == [0, 0], outs
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1),
                       overrides=("n_train=1000",))  # fmt: skip
    assert item_states(items, runs_dir) == ["done", "done"]
    # Each pool accounts for each item once: an attempt (or a skip note) appended to the item's
    # log, neither overwriting the other's, or "held elsewhere" while the other pool ran it.
    attempts = {item.index: 0 for item in items}
    for item in items:
        log = log_path(runs_dir / ".logs", item).read_text()
        assert log.count("==== ") >= 1, log
        attempts[item.index] = log.count("==== ")
    held = sum(out.count(": held elsewhere (") for out in outs)
    assert sum(attempts.values()) + held == 4, outs
    written = [out.count(": done (exit 0") for out in outs]
    assert sum(written) == 2, outs  # each run written once, by one of the pools


# --- random command lines -------------------------------------------------------------------

FUZZ_FRAGMENTS = [
    "$(x)", "'", '"', "\n", "\x00", "é", " ", "--", "-1", "0", "9" * 20, "nan", "inf", "1e300",
    "a", "a=b", "=", ",", "0-3", "3-0", "/dev/zero", "..", "%", ":", "k=v:NoSchedule", "none", "",
]  # fmt: skip
FUZZ_OPTIONS = {
    "plan": ["--seeds", "--seed", "--set", "--items", "--flavour", "--plan-fingerprint", "--plan",
             "--profile"],
    "cells": ["--set", "--profile"],
    "k8s": ["--seeds", "--set", "--items", "--parallelism", "--backoff-limit-per-index", "--name",
            "--namespace", "--cpu", "--memory", "--label", "--annotation", "--toleration",
            "--node-selector", "--queue", "--image-digest", "--ttl-seconds-after-finished",
            "--run-as-user", "--data-file", "--runs-claim"],
    "slurm": ["--seeds", "--set", "--items", "--parallelism", "--cpus", "--memory", "--time",
              "--name", "--partition", "--account", "--qos", "--constraint", "--sbatch",
              "--signal-seconds", "--data", "--python", "--image-registry", "--image-tag"],
    "runs": ["--runs", "--job"],
}  # fmt: skip


@pytest.mark.slow
def test_random_command_lines_end_in_a_result_or_one_usage_line(tmp_path, capsys, monkeypatch):
    """Hostile values in any option of the commands that write plans, scripts and manifests:
    exit 0, or exit 2 with one ``error:`` line (or argparse's usage); never a traceback."""
    from mnist_suite.cli import main

    monkeypatch.chdir(tmp_path)  # whatever a relative value names stays in here
    rng = random.Random(20261201)
    for _ in range(600):
        command = rng.choice(list(FUZZ_OPTIONS))
        argv = [command]
        argv += {"cells": ["sgd-grid"], "runs": []}.get(command, ["softmax", "--profile", "quick"])
        for _ in range(rng.randint(1, 3)):
            value = "".join(rng.choice(FUZZ_FRAGMENTS) for _ in range(rng.randint(1, 3)))
            argv.append(f"{rng.choice(FUZZ_OPTIONS[command])}={value}")
        if command == "slurm":
            argv += [f"--logs={tmp_path / 'logs'}", "--allow-local-paths"]
        if command in ("plan", "runs"):
            argv += [f"--runs={tmp_path / 'runs'}"]
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        _, err = capsys.readouterr()
        assert code in (0, 2) and "Traceback" not in err, (argv, err)
        if code == 2 and not err.startswith("usage: "):
            assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)


# --- files planted in a runs, logs or bench folder ------------------------------------------


def _plant(path: Path, kind: str, outside: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(outside)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "symlink"])
def test_planted_files_at_a_planned_run_neither_hang_nor_grow_the_pool(tmp_path, mnist, kind):
    """The pool's time estimates and live epochs read planned runs' files: a FIFO, a link to
    /dev/zero or to a file elsewhere at ``metrics.json``/``history.jsonl`` is read as nothing."""
    from mnist_suite.jobs import get_job
    from mnist_suite.launch.watch import read_tail
    from mnist_suite.plan import run_dir
    from mnist_suite.schedule import expected_seconds

    runs_dir = tmp_path / "runs"
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"wall_seconds": 1234.5}))
    items = build_plan(["softmax-original"], profile="quick", seeds=(0,),
                       overrides=("n_train=1000",))  # fmt: skip
    path = run_dir(runs_dir, items[0])
    _plant(path / "metrics.json", kind, outside)
    _plant(path / "history.jsonl", kind, outside)
    # Read as nothing: the item's expected seconds are its job's estimate.
    estimate = get_job("softmax-original").expected_seconds(items[0].cell, "quick")
    assert expected_seconds(items, runs_dir) == {items[0].index: estimate}
    with pytest.raises(OSError):
        read_tail(path / "history.jsonl", 8192)
    argv = ["train", *QUICK, "--seeds", "0", "--workers", "1", "--runs", str(runs_dir)]
    proc = _subprocess(*argv, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert item_states(items, runs_dir) == ["done"]  # the planted run was corrupt: run again
    assert outside.read_text() == json.dumps({"wall_seconds": 1234.5})


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "symlink"])
def test_a_planted_pool_log_is_refused_not_followed(tmp_path, kind):
    """A link at ``.logs/<job>/<run-id>.log`` would have the pool append a run's output to any
    file; a FIFO would block it. The item is not started (one line), the pool goes on."""
    from mnist_suite.launch.local import log_path

    runs_dir = tmp_path / "runs"
    outside = tmp_path / "victim"
    outside.write_text("mine\n")
    items = build_plan(["softmax-original"], profile="quick", seeds=(0,),
                       overrides=("n_train=1000",))  # fmt: skip
    log = log_path(runs_dir / ".logs", items[0])
    _plant(log, kind, outside)
    argv = ["train", *QUICK, "--seeds", "0", "--workers", "1", "--runs", str(runs_dir)]
    proc = _subprocess(*argv, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    refused = [line for line in proc.stdout.splitlines() if "not started" in line]
    assert len(refused) == 1 and str(log) in refused[0], proc.stdout
    assert "1 items in" in proc.stdout and "1 failed or not run" in proc.stdout
    assert outside.read_text() == "mine\n"
    assert item_states(items, runs_dir) == ["missing"]


def test_the_pool_log_folder_is_not_followed_either(tmp_path):
    from mnist_suite.launch.local import open_log

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "job").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        open_log(logs / "job" / "r.log")
    assert not list(elsewhere.iterdir())


def test_a_run_file_linked_outside_the_runs_folder_is_not_reported(tmp_path):
    """A link in a run folder (a record or an artifact, or the run folder itself) would copy a
    file from anywhere into ``results.json``: such a run is corrupt and its files unread."""
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "metrics.json").write_text(json.dumps({"wall_seconds": 1.0, "secret_score": 0.4242}))
    (secret / "notes.json").write_text(json.dumps({"secret_note": "do not copy"}))
    run = _execute(tmp_path / "runs", "r1").path
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(secret / "metrics.json")
    linked = _execute(tmp_path / "elsewhere", "r2").path
    (tmp_path / "runs" / "tiny" / "r2").symlink_to(linked)
    artifact = _execute(tmp_path / "runs", "r3").path / "artifacts"
    artifact.mkdir(exist_ok=True)
    (artifact / "notes.json").symlink_to(secret / "notes.json")

    assert runs.load_run(run).state == "corrupt"
    assert "symbolic link" in runs.load_run(run).problem
    assert runs.load_run(tmp_path / "runs" / "tiny" / "r2").state == "corrupt"
    assert runs.load_run(artifact.parent).json("notes") is None
    results = build_report(tmp_path / "runs", None, tmp_path / "rep")
    text = (tmp_path / "rep" / "results.json").read_text()
    assert "secret_score" not in text and "0.4242" not in text and "do not copy" not in text
    states = {r["run_id"]: r["state"] for r in results["runs"]}
    assert states == {"r1": "corrupt", "r2": "corrupt", "r3": "done"}


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_report_bench_skips_planted_benchmark_files(tmp_path, kind):
    """``report --bench`` reads each JSON bounded and only from regular files."""
    bench = tmp_path / "bench"
    bench.mkdir()
    path = bench / "run.json"
    if kind == "huge":
        with open(path, "wb") as f:
            f.truncate(65 << 20)  # sparse: more than the cap, almost no disk
    else:
        _plant(path, kind, tmp_path)
    (tmp_path / "runs").mkdir()
    code, err, peak = run_bounded({"argv": ["report", "--runs", str(tmp_path / "runs"),
                                            "--bench", str(bench), "--out",
                                            str(tmp_path / "rep")]})  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err and peak < 200, (err, peak)
    assert json.loads((tmp_path / "rep" / "results.json").read_text())["benchmark_files"] == []


# --- text from runs in terminal listings and the report -------------------------------------

HOSTILE = "x\x1b[2J\x1b[31m\r\n\n## Gate passed [click](javascript:alert(1)) `code` *b* | c"


def test_report_escapes_control_characters_and_markdown(tmp_path):
    _execute(tmp_path / "runs", "x", cell=HOSTILE)
    build_report(tmp_path / "runs", None, tmp_path / "rep")
    md = (tmp_path / "rep" / "index.md").read_text()
    page = (tmp_path / "rep" / "index.html").read_text()
    for text in (md, page):
        assert "\x1b" not in text and "\r" not in text
    assert "\n## Gate passed" not in md
    assert not re.search(r"(?<!\\)\]\(javascript:", md)  # no unescaped link target
    assert "\\#\\# Gate passed \\[click\\](javascript:alert(1))" in md
    assert "javascript:alert" not in page.replace("[click](javascript:alert(1))", "")


def test_runs_listing_escapes_control_characters(run_cli, tmp_path):
    _execute(tmp_path / "runs", "x", cell=HOSTILE)
    code, out, err = run_cli("runs", "--runs", str(tmp_path / "runs"))
    assert code == 0, err
    assert "\x1b" not in out and "\r" not in out
    assert not any(line.startswith("## Gate passed") for line in out.splitlines()), out
    assert "x\\x1b[2J\\x1b[31m\\r\\n\\n## Gate passed" in out


# --- report temp folders and faults --------------------------------------------------------


def test_temp_folders_of_killed_reports_are_removed_by_the_next(tmp_path):
    from mnist_suite.files import atomic_write_json
    from mnist_suite.report import OWNER

    _execute(tmp_path / "runs")
    out = tmp_path / "rep"
    build_report(tmp_path / "runs", None, out)
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = {**claims.machine(), "pid": os.getpid(), "start": claims._start_ticks(os.getpid())}
    dead = {**claims.machine(), "pid": gone.pid, "start": "1"}
    folders = {name: tmp_path / f".rep.{name}" for name in
               ("tmp-dead", "old-dead", "tmp-live", "tmp-unowned", "other-dead")}  # fmt: skip
    for name, folder in folders.items():
        folder.mkdir()
        (folder / "figures").mkdir()
        if name != "tmp-unowned":
            atomic_write_json(folder / OWNER, me if name == "tmp-live" else dead)
    build_report(tmp_path / "runs", None, out)
    left = sorted(p.name for p in tmp_path.glob(".rep.*"))
    assert left == [".rep.other-dead", ".rep.tmp-live", ".rep.tmp-unowned"]
    assert not (out / OWNER).exists()


def test_a_report_killed_between_its_renames_gets_its_old_report_back(tmp_path):
    from mnist_suite.files import atomic_write_json
    from mnist_suite.report import OWNER

    _execute(tmp_path / "runs")
    out = tmp_path / "rep"
    build_report(tmp_path / "runs", None, out)
    before = snapshot(out)
    old = tmp_path / ".rep.old-x"
    old.mkdir()
    os.replace(out, old / "rep")
    gone = subprocess.Popen(["true"])
    gone.wait()
    atomic_write_json(old / OWNER, {**claims.machine(), "pid": gone.pid, "start": "1"})
    from mnist_suite.report import remove_abandoned

    assert remove_abandoned(out) == [old]
    assert snapshot(out) == before


def test_a_full_disk_inside_a_section_is_one_line_and_the_old_report_survives(
    run_cli,
    tmp_path,
    monkeypatch,
    done_softmax,  # noqa: F811
):
    import errno

    from mnist_suite.report import figures

    argv = ["report", "--runs", str(done_softmax.parents[1]), "--out", str(tmp_path / "rep"),
            "--bench", str(tmp_path / "none")]  # fmt: skip
    code, _, err = run_cli(*argv)
    assert code == 0, err
    before = snapshot(tmp_path / "rep")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "fig.png"))

    monkeypatch.setattr(figures.FigureWriter, "save", full)
    code, _, err = run_cli(*argv)
    one_line_error(code, err, expected_code=1)
    assert "No space left on device" in err
    assert snapshot(tmp_path / "rep") == before
    assert not list(tmp_path.glob(".rep.*"))


def test_predict_refuses_weights_that_are_not_finite(tmp_path):
    import numpy as np

    from mnist_suite.nn import mlp, model_arrays

    arrays = model_arrays(mlp((784, 16, 10), rng=np.random.default_rng(0)))
    arrays = {k: (np.full_like(v, np.nan) if k.startswith(("W", "b")) else v)
              for k, v in arrays.items()}  # fmt: skip
    np.savez(tmp_path / "w.npz", **arrays)
    out = tmp_path / "p.png"
    proc = _subprocess("predict", "--weights", str(tmp_path / "w.npz"), "--index", "0",
                       "--out", str(out))  # fmt: skip
    one_line_error(proc.returncode, proc.stderr)
    assert "W1 holds 12544 NaN or infinite values; not a usable model" in proc.stderr
    assert not out.exists()


def test_a_stop_signal_while_an_item_starts_leaves_no_item_without_a_code(tmp_path, monkeypatch):
    """SIGTERM arriving while the pool starts an item (its log opened, its process not yet
    recorded as running) stops that item too, and every item gets 143: no ``KeyError``."""
    from mnist_suite.launch import LaunchOptions
    from mnist_suite.launch.local import LocalLauncher

    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1),
                       overrides=("n_train=1000",))  # fmt: skip
    give = LocalLauncher._give

    def give_then_signalled(self, *args):
        os.kill(os.getpid(), signal.SIGTERM)  # lands inside the start
        return give(self, *args)

    monkeypatch.setattr(LocalLauncher, "_give", give_then_signalled)
    lines: list[str] = []
    options = LaunchOptions(runs=tmp_path / "runs", workers=1)
    codes = LocalLauncher(echo=lines.append).launch(items, options)
    assert codes == {0: 143, 1: 143}, lines
    assert "stopping on SIGTERM: 1 running items end as interrupted, 1 not started" in lines, lines
    assert item_states(items, tmp_path / "runs") in (["interrupted", "missing"],
                                                     ["missing", "missing"])  # fmt: skip


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge", "deep", "symlink"])
def test_the_shared_json_reader_is_bounded(tmp_path, kind):
    """``files.load_json``: one short reason for anything that is not a small JSON file."""
    from mnist_suite.files import load_json

    path = tmp_path / "x.json"
    if kind == "huge":
        with open(path, "wb") as f:
            f.truncate(2 << 20)
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        _plant(path, kind, tmp_path / "elsewhere.json")
        (tmp_path / "elsewhere.json").write_text("{}")
    if kind == "symlink":
        assert load_json(path) == {}  # followed by default (user-given paths)
        with pytest.raises(OSError):
            load_json(path, follow=False)
        return
    with pytest.raises((OSError, ValueError)) as caught:
        load_json(path, max_bytes=1 << 20)
    assert "\n" not in str(caught.value)
