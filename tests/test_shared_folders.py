"""Many users, one folder: records readable as the folder intends, another user's finished run
never lost, another pool's items not counted as this pool's failures.

The reading side runs as a second uid (``nobody``) in a forked child: root ignores file
permissions, so only a real second user sees what a shared folder's other users see. The child
gets the group of the shared folder (set-group-id, group ``nogroup``), as a team's folder would.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mnist_suite import claims, runs
from mnist_suite.jobs import Job
from mnist_suite.plan import build_plan, run_dir
from tests.test_outputs import snapshot
from tests.test_security import QUICK, TINY, TinyConfig, two_pools

OTHER = pwd.getpwnam("nobody").pw_uid
GROUP = grp.getgrnam("nogroup").gr_gid


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def shared():
    """A folder shared through its group: root:nogroup, 2775 (new entries get its group)."""
    if os.getuid() != 0:
        pytest.fail("these tests switch to a second uid and need root")
    folder = Path(tempfile.mkdtemp(prefix="mnist-suite-shared-"))
    folder.chmod(0o755)  # mkdtemp's 0700 would keep the other user out of the folder itself
    runs_dir = folder / "runs"
    runs_dir.mkdir()
    os.chown(runs_dir, 0, GROUP)
    runs_dir.chmod(0o2775)
    yield runs_dir
    shutil.rmtree(folder, ignore_errors=True)


def as_other_user(work: Callable[[], object]) -> tuple[object, str, str]:
    """(``work()``'s JSON-able result, stdout, stderr) of ``work`` run as ``nobody``."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - read back after the child has exited
    err = tempfile.TemporaryFile()  # noqa: SIM115
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: become the other user, run, report through the pipe
        code = 1
        try:
            os.close(read)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            # The parent's sys.stdout/err may be pytest's capture objects: write to the fds.
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.setgroups([GROUP])
            os.setgid(GROUP)
            os.setuid(OTHER)
            os.umask(0o002)
            result = work()
            os.write(write, json.dumps(result).encode())
            code = 0
        except BaseException as exc:  # reported to the parent as text
            os.write(write, json.dumps({"raised": repr(exc)}).encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    with out, err:
        return json.loads(data), out.read().decode(), err.read().decode()


def _execute(out: Path) -> runs.Outcome:
    return runs.execute(TINY, "", TinyConfig(), seed=0, profile="quick", out=out, run_id="r1")


def _modes(run: Path) -> dict[str, int]:
    names = ("config.json", "status.json", "metrics.json")
    return {name: stat.S_IMODE((run / name).stat().st_mode) for name in names}


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_records_get_the_mode_of_the_umask(shared, mask):
    """mkstemp's 0600 would make every run unreadable to the folder's other users."""
    with umask(mask):
        outcome = _execute(shared)
    assert outcome.state == "done"
    assert set(_modes(outcome.path).values()) == {0o666 & ~mask}


def test_a_finished_run_in_a_group_folder_is_kept_by_another_user(shared):
    """Another user's ``run`` of the same item finds it done and leaves every byte of it."""
    with umask(0o002):
        path = _execute(shared).path
    before = snapshot(path)

    result, _, _ = as_other_user(lambda: [runs.load_run(path).state, _execute(shared).message])
    assert result == ["done", "already recorded"]
    assert snapshot(path) == before


def test_a_run_this_user_cannot_read_is_unreadable_and_never_cleared(shared):
    """A record the other user may not read (0600, as older suites wrote them) is ``unreadable``:
    not corrupt, not cleared, not run again, even with ``force``."""
    with umask(0o002):
        path = _execute(shared).path
    (path / "metrics.json").chmod(0o600)
    before = snapshot(path)

    def attempt():
        run = runs.load_run(path)
        outcomes = [_execute(shared), runs.execute(TINY, "", TinyConfig(), seed=0,
                    profile="quick", out=shared, run_id="r1", force=True)]  # fmt: skip
        return [run.state, run.problem, *[(o.state, o.skipped, o.message) for o in outcomes]]

    result, _, _ = as_other_user(attempt)
    state, problem, *outcomes = result
    assert state == "unreadable"
    assert problem == "metrics.json: unreadable to this user (Permission denied)"
    for outcome in outcomes:
        assert outcome == ["unreadable", True, f"{problem}; not cleared"]
    assert snapshot(path) == before


def test_run_of_an_unreadable_run_is_one_line_exit_1(shared, run_cli):
    """The command line: one ``error:`` line, exit 1, the run left as it was."""
    from mnist_suite.cli import main

    with umask(0o002):
        code, out, err = run_cli("run", *QUICK, "--runs", str(shared))
        assert code == 0, err
        path = Path(out.split()[1])
        run_cli("run", *QUICK, "--runs", str(shared))  # imports what the child will need
    (path / "config.json").chmod(0o600)
    before = snapshot(path)

    code, out, err = as_other_user(lambda: main(["run", *QUICK, "--runs", str(shared)]))
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err == (
        "error: softmax-original: config.json: unreadable to this user (Permission denied); "
        "not cleared\n"
    )
    assert snapshot(path) == before


def test_an_item_held_by_another_pool_is_held_elsewhere_not_failed(tmp_path, mnist):
    """Two pools on one folder: the items the other one holds are neither run nor failures."""
    runs_dir = tmp_path / "runs"
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1),
                       overrides=("n_train=1000",))  # fmt: skip
    held = run_dir(runs_dir, items[0])
    held.parent.mkdir(parents=True)
    claim = claims.acquire(claims.claim_path(held))  # the other pool: this process, alive
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mnist_suite", "train", *QUICK, "--seeds", "0-1",
             "--workers", "1", "--runs", str(runs_dir)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        claim.release()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    line = f"#0 softmax-original seed 0: held elsewhere (claimed by pid {os.getpid()} on "
    assert line in proc.stdout
    assert "1 held elsewhere (another pool's live claim; not failures here), 0 failed" in (
        proc.stdout
    )
    assert not held.exists()
    assert runs.load_run(run_dir(runs_dir, items[1])).state == "done"


def test_two_pools_at_once_without_waiting_both_succeed(tmp_path, mnist):
    """Each pool runs what it claims first; what the other holds is held elsewhere (or found
    finished), never a failure: both exit 0 and every run is written once."""
    runs_dir = tmp_path / "runs"
    pools, outs = two_pools(runs_dir, "0", stderr=subprocess.PIPE)
    assert [p.returncode for p in pools] == [0, 0], outs
    assert all("Traceback" not in err for _, err in outs), outs
    assert all(", 0 failed or not run" in out for out, _ in outs), outs
    items = build_plan(["softmax-original"], profile="quick", seeds=(0, 1),
                       overrides=("n_train=1000",))  # fmt: skip
    assert [runs.load_run(run_dir(runs_dir, i)).state for i in items] == ["done", "done"]


def test_the_umask_is_read_without_changing_it():
    from mnist_suite import files

    with umask(0o027):
        assert files.umask() == 0o027 and files.file_mode() == 0o640
        assert files.umask() == 0o027  # reading it left it as it was


def test_unreadable_folders_in_a_shared_runs_folder_hide_no_other_run(shared):
    """Another user's job folders and one of its run folders, made with umask 077: whatever
    the order of the folder's entries, each is one ``unreadable`` line with its path and why,
    every other run is listed, summarised, reported and compared, and a report built from
    more runs than this user can read is left as it is."""
    from mnist_suite.cli import main

    with umask(0o002):
        done = [_execute(shared).path]
        done.append(runs.execute(TINY, "", TinyConfig(), seed=1, profile="quick", out=shared,
                                 run_id="r2").path)  # fmt: skip
    with umask(0o077):  # another user's: its folders 0700
        theirs = [runs.execute(Job(name, "test job", TinyConfig, TINY.train), "", TinyConfig(),
                               seed=0, profile="quick", out=shared, run_id="r1").path
                  for name in ("aaa", "zzz")]  # fmt: skip
        hidden = runs.execute(TINY, "", TinyConfig(), seed=2, profile="quick", out=shared,
                              run_id="r3").path  # fmt: skip
    reports = shared.parent / "reports"
    reports.mkdir(mode=0o777)
    reports.chmod(0o777)
    kept = reports / "kept"
    argv = {
        "runs": ["runs", "--runs", str(shared)],
        "summary": ["runs", "--summary", "--runs", str(shared)],
        "compare": ["compare", str(shared), str(shared)],
    }
    for args in argv.values():  # as root: every run read; imports what the child will need
        assert main(args) == 0
    assert main(["report", "--runs", str(shared), "--out", str(kept), "--bench", "none"]) == 0
    before = snapshot(kept), {p: snapshot(p) for p in [*done, *theirs, hidden]}

    def read_as_other_user():
        codes = {name: main(args) for name, args in argv.items()}
        codes["replace"] = main(["report", "--runs", str(shared), "--out", str(kept),
                                 "--bench", "none"])  # fmt: skip
        new = ["--out", str(reports / "new"), "--bench", "none"]
        codes["new"] = main(["report", "--runs", str(shared), *new])
        return codes

    codes, out, err = as_other_user(read_as_other_user)
    assert codes == {"runs": 0, "summary": 0, "compare": 0, "replace": 2, "new": 0}, err
    why = "unreadable to this user (Permission denied)"
    for folder in theirs:
        line = f"unreadable: {folder.parent}: job folder: {why}; its runs are not listed"
        assert line in out  # runs --summary
        row = next(
            r for r in out.splitlines() if r.startswith(f"unreadable  {folder.parent.name} ")
        )
        assert f"job folder: {why}; its runs are not listed" in row  # runs
    assert f"unreadable: {hidden}: config.json: {why}" in out
    assert "5 runs: 3 unreadable, 2 done" in out and "no runs" not in out
    assert "holds no runs" not in err
    assert f"error: out {kept}: a report of 5 finished runs; this one has 2: left as it is" in err
    assert "Traceback" not in err
    results = json.loads((reports / "new" / "results.json").read_text())
    states = sorted((r["job"], r["run_id"], r["state"]) for r in results["runs"])
    assert states == [("aaa", "", "unreadable"), ("tiny", "r1", "done"), ("tiny", "r2", "done"),
                      ("tiny", "r3", "unreadable"), ("zzz", "", "unreadable")]  # fmt: skip
    assert (snapshot(kept), {p: snapshot(p) for p in [*done, *theirs, hidden]}) == before

    shared.chmod(0o700)  # the runs folder itself: this user may not list it at all
    (code, _), _, err = as_other_user(lambda: (main(argv["runs"]), 0))
    assert code == 1 and err == f"error: runs {shared}: cannot list it (Permission denied)\n"
