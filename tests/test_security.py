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
        (["runs", "--job", "../.."], "--job"),
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
    one_line_error(code, err)
    assert "not writable" in err


def test_plan_save_and_slurm_logs_on_a_read_only_mount_are_one_line(run_cli, tmp_path, mount):  # noqa: F811
    read_only = mount(tmp_path / "ro", "ro,size=1m")
    code, _, err = run_cli("plan", *QUICK, "--save", str(read_only / "plan.json"))
    one_line_error(code, err)
    code, _, err = run_cli("slurm", *QUICK, "--mode", "python", "--logs", str(read_only / "l"))
    one_line_error(code, err)


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
        (["slurm", "--memory", "4 G"], "--memory"),
        (["slurm", "--time", "tomorrow"], "--time"),
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


def _wait_for_children(proc: subprocess.Popen, n: int) -> list[int]:
    deadline = time.monotonic() + 60
    while len(kids := _children(proc.pid)) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # let them get into training (past imports and data loading)
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
    kids = _wait_for_children(proc, 2)
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
    kids = _wait_for_children(proc, 2)
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


@pytest.mark.slow
def test_two_pools_at_once_keep_both_logs_and_write_each_run_once(tmp_path, mnist):
    from mnist_suite.launch.local import log_path

    runs_dir = tmp_path / "runs"
    argv = [sys.executable, "-m", "mnist_suite", "train", *QUICK, "--seeds", "0-1",
            "--workers", "1", "--runs", str(runs_dir)]  # fmt: skip
    env = {**os.environ, runs.CLAIM_WAIT_ENV: "120"}
    pools = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300)[0] for p in pools]
    assert [p.returncode for p in pools] == [0, 0], outs
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1),
                       overrides=("n_train=1000",))  # fmt: skip
    assert item_states(items, runs_dir) == ["done", "done"]
    for item in items:
        log = log_path(runs_dir / ".logs", item).read_text()
        assert log.count("==== ") == 2, log  # both attempts, neither overwritten
    assert sum(out.count(", skipped (exit 0") for out in outs) == 2, outs


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
