"""``compare BASE NEW`` with two git revisions: each runs its own code, seed for seed, in one
runs folder; identical code is run once; bad revisions are one line and the right exit code.

Each test builds a small git repository holding a copy of the package and commits edits to
it; the jobs are softmax at a tiny size (real MNIST, a second or two a run).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_suite import fingerprint

pytestmark = pytest.mark.slow

TINY = ["--set", "epochs=1", "--set", "n_train=3000", "--set", "n_dev=500"]
# Runs of a few seconds each (all of MNIST, ten epochs): one is still running when the test
# acts on it (a signal, a pause) a moment after it is recorded ``running``.
LONGER = ["--set", "epochs=10", "--set", "n_dev=500"]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


ROOT = Path(__file__).resolve().parent.parent


def make_repo(root: Path, files: tuple[str, ...] = ()) -> Path:
    """A git repository at ``root`` with the package's source and ``files`` (paths in this
    checkout) as its first commit, tagged ``base``."""
    shutil.copytree(
        fingerprint.SOURCE_ROOT, root / "mnist_suite", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    (root / ".gitignore").write_text("/build/\n__pycache__/\n*.egg-info/\n")
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.invalid")
    _git(root, "config", "user.name", "t")
    commit(root, "base")
    _git(root, "tag", "base")
    return root


@pytest.fixture
def repo(tmp_path, mnist) -> Path:
    """A git repository with the package's source as its first commit (tagged ``base``)."""
    return make_repo(tmp_path / "repo")


def _default_signals() -> None:
    """In the child: the stop signals as a terminal gives them, whatever this test inherited
    (a background job of a script ignores SIGINT; nohup ignores SIGHUP)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def compare(repo: Path, *args: str, wait: bool = True, stderr=subprocess.PIPE):
    """``mnist-suite compare`` run from ``repo`` by the repository's own code; without
    ``wait``, the started process (its stderr to ``stderr``)."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    argv = [sys.executable, "-m", "mnist_suite", "compare", *args]
    if not wait:
        return subprocess.Popen(
            argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
            preexec_fn=_default_signals,
        )  # fmt: skip
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def edit(repo: Path, relative: str, old: str, new: str) -> None:
    path = repo / "mnist_suite" / relative
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# An import-time side effect: the marker is written wherever the module is imported and its
# folder exists (on this host; not in a container, whose file system has no such folder).
SIDE_EFFECT = """
try:
    with open({marker!r}, "a") as _f:
        _f.write(__import__("os").getcwd() + "\\n")
except OSError:
    pass
"""


def hostile_branch(repo: Path, marker: Path) -> str:
    """A branch ``hostile`` whose softmax job writes ``marker`` when imported; the work tree
    stays where it was, so the comparing suite (the work tree's code) is not hostile itself."""
    _git(repo, "checkout", "-q", "-b", "hostile")
    with open(repo / "mnist_suite" / "jobs" / "softmax.py", "a") as f:
        f.write(SIDE_EFFECT.format(marker=str(marker)))
    sha = commit(repo, "an import-time side effect")
    _git(repo, "checkout", "-q", "-")
    return sha


def runs_made(repo: Path) -> list[Path]:
    runs = repo / "build" / "ab" / "runs"
    return sorted(p for p in runs.rglob("status.json"))


def state_of(status: Path) -> dict:
    """A run's status record ({} while it is being replaced)."""
    try:
        return json.loads(status.read_text())
    except (OSError, ValueError):
        return {}


def wait_for_running(repo: Path, timeout: float = 300) -> tuple[Path, dict]:
    """The first run recorded ``running`` (its status.json and record), polled for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in runs_made(repo):
            if (status := state_of(path)).get("state") == "running":
                return path, status
        time.sleep(0.05)
    raise AssertionError(f"no run recorded running within {timeout} s")


def wait_for_line(path: Path, text: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} not in {path} within {timeout} s"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Does process ``pid`` exist (a zombie, ended but not yet reaped, does not count)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_revisions_that_do_not_exist_are_one_line(repo):
    code, out, err = compare(repo, "base", "no-such-branch", "--jobs", "softmax")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: NEW 'no-such-branch': neither a file or folder nor a git revision"
    ]
    # Never an option to git, whatever it looks like.
    code, _, err = compare(repo, "--", "--output=/tmp/x", "base", "--jobs", "softmax")
    assert code == 2 and "Traceback" not in err and not Path("/tmp/x").exists()
    code, _, err = compare(repo, "base", "HEAD")
    assert code == 2 and err.strip().endswith("--jobs JOB [JOB ...]")


def test_a_revision_without_the_job_is_one_line(repo):
    (repo / "mnist_suite" / "jobs" / "softmax.py").unlink()
    commit(repo, "no softmax")
    code, _, err = compare(repo, "base", "HEAD", "--jobs", "softmax", "--seeds", "0-1", *TINY)
    assert code == 2 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "NEW HEAD" in line and "unknown job 'softmax'" in line
    assert runs_made(repo) == []  # refused before anything ran


def test_identical_code_runs_once_and_says_no_change(repo):
    edit(repo, "jobs/softmax.py", '"""', '"""A docstring edit: the same code. ')
    (repo / "mnist_suite" / "jobs" / "softmax.py").write_text(
        "# a comment\n" + (repo / "mnist_suite" / "jobs" / "softmax.py").read_text()
    )
    commit(repo, "comment and docstring only")
    args = ("base", "HEAD", "--jobs", "softmax", "--seeds", "0-1", *TINY, "--fail-on", "worse")
    code, out, err = compare(repo, *args)
    assert code == 0, err
    assert "identical code for softmax: no change" in err
    assert len(runs_made(repo)) == 2  # one run per seed, shared by both sides
    rows = [ln for ln in out.splitlines() if ln.startswith("softmax ")]
    assert rows and not any(" worse " in ln or " better " in ln for ln in rows)
    before = [p.stat().st_mtime_ns for p in runs_made(repo)]
    code, _, err = compare(repo, *args)  # again: nothing to run
    assert code == 0 and "nothing to run" in err
    assert [p.stat().st_mtime_ns for p in runs_made(repo)] == before


def test_a_weakening_commit_is_worse_and_fails(repo):
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.0005")
    commit(repo, "lr / 1000")
    code, out, err = compare(
        repo, "base", "HEAD", "--jobs", "softmax", "--seeds", "0-2", *TINY, "--fail-on", "worse"
    )
    assert code == 1, err
    row = next(ln for ln in out.splitlines() if "test_accuracy" in ln)
    assert "worse" in row
    assert "test_accuracy" in err.strip().splitlines()[-1]
    # Both sides' runs live in one folder, side by side: 3 seeds x 2 versions of the code.
    assert len(runs_made(repo)) == 6


def test_a_revision_that_fails_to_run_stops_with_one_line_and_keeps_the_other_side(repo):
    signature = "def train_softmax(cfg: SoftmaxConfig, run) -> dict:\n"
    edit(repo, "jobs/softmax.py", signature, signature + '    raise RuntimeError("a bug")\n')
    commit(repo, "a bug")
    code, out, err = compare(repo, "base", "HEAD", "--jobs", "softmax", "--seeds", "0", *TINY)
    assert code == 1 and out == "" and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "NEW HEAD" in line and "seed 0 did not finish" in line and ".log" in line
    done = [p for p in runs_made(repo) if '"done"' in p.read_text()]
    assert len(done) == 1 and ".rev-" not in str(done[0])  # BASE's run stays recorded


def test_uncommitted_changes_are_not_part_of_head_and_that_is_said(repo):
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.4")  # not committed
    code, _, err = compare(repo, "base", "HEAD", "--jobs", "softmax", "--seeds", "0-1", *TINY)
    assert code == 0, err
    assert "uncommitted changes; HEAD means the commit" in err
    assert "identical code for softmax: no change" in err  # HEAD is base: the edit is not in it


def test_an_interrupted_compare_resumes_without_redoing_finished_runs(repo):
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.4")
    commit(repo, "lr 0.4")
    # Twelve tiny runs: the interrupt, sent once the first is recorded running, lands while
    # most are still to make.
    args = ("base", "HEAD", "--jobs", "softmax", "--seeds", "0-5", *TINY)
    child = compare(repo, *args, wait=False)
    wait_for_running(repo)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("stopping on SIGINT: ")
    finished = {p: p.stat().st_mtime_ns for p in runs_made(repo) if '"done"' in p.read_text()}
    code, _, err = compare(repo, *args)
    assert code == 0, err
    assert len(runs_made(repo)) == 12
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # not run again


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["SIGTERM", "SIGHUP", "SIGKILL"],
)
def test_a_stopped_compare_stops_its_workers_and_their_items(repo, signum, code):
    """SIGTERM or SIGHUP: the running item records ``interrupted``, no worker is left, and
    compare ends with 128 + the signal and one line. SIGKILL: the kernel ends the workers."""
    base = _git(repo, "rev-parse", "base")
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.4")
    commit(repo, "lr 0.4")
    args = ("base", "HEAD", "--jobs", "softmax", "--seeds", "0-1", *LONGER)
    child = compare(repo, *args, wait=False)
    status, running = wait_for_running(repo)
    workers = children(child.pid)
    assert running["pid"] in workers and len(workers) == 2  # one per side, both started to plan
    child.send_signal(signum)
    out, err = child.communicate(timeout=120)
    assert child.returncode == code, err
    assert "Traceback" not in err and out == ""
    if signum != signal.SIGKILL:
        name = signal.Signals(signum).name
        (line,) = [ln for ln in err.splitlines() if ln.startswith("stopping on")]
        assert line == (
            f"stopping on {name}: BASE {base[:10]} softmax seed 0 ends as "
            "interrupted, 3 runs not started; what finished stays recorded"
        )
        assert err.strip().splitlines()[-1] == line
    deadline = time.monotonic() + 60  # SIGKILL: the kernel tells them; they end on their own
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)
    assert state_of(status)["state"] == "interrupted"
    assert [state_of(p)["state"] for p in runs_made(repo)] == ["interrupted"]


def test_two_compares_on_one_runs_folder_both_finish(repo, tmp_path):
    """The second compare finds the first's item held (its worker paused while it runs it):
    it says so, waits for its result and goes on; both finish, every run made once."""
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.4")
    commit(repo, "lr 0.4")
    args = ("base", "HEAD", "--jobs", "softmax", "--seeds", "0-1", *LONGER)
    first = compare(repo, *args, wait=False)
    status, running = wait_for_running(repo)
    os.kill(running["pid"], signal.SIGSTOP)
    try:
        assert state_of(status)["state"] == "running"  # paused mid-run, its claim held
        log = tmp_path / "second.err"
        with open(log, "w") as err:
            second = compare(repo, *args, wait=False, stderr=err)
        wait_for_line(log, "softmax seed 0: held by pid")
    finally:
        os.kill(running["pid"], signal.SIGCONT)
    outs = [proc.communicate(timeout=600)[0] for proc in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), log.read_text()
    assert "waiting for its result" in log.read_text()
    assert all("test_accuracy" in out for out in outs)
    made = {p: state_of(p) for p in runs_made(repo)}
    assert len(made) == 4 and all(s["state"] == "done" for s in made.values())
    assert made[status]["pid"] == running["pid"]  # made by the first compare, once


def test_without_containers_the_revisions_run_here_and_that_is_said_before_they_run(repo, tmp_path):
    marker = tmp_path / "imported-on-this-host"
    new = hostile_branch(repo, marker)
    base = _git(repo, "rev-parse", "base")
    code, _, err = compare(repo, "base", "hostile", "--jobs", "softmax", "--seeds", "0", *TINY)
    assert code == 0, err
    user = pwd.getpwuid(os.getuid()).pw_name
    assert err.splitlines()[:2] == [
        "reading base and hostile as git revisions",
        f"note: BASE base ({base[:10]}) and NEW hostile ({new[:10]}) run their code on this "
        f"host, as {user}; --containers confines them",
    ]
    # It did run here, as said: imported in its checkout, by its plan and by its run.
    checkout = repo / "build" / "ab" / f"rev-{new[:12]}"
    assert set(marker.read_text().splitlines()) == {str(checkout)}


def test_with_containers_and_no_engine_nothing_of_a_revision_runs_or_is_written(
    repo, tmp_path, monkeypatch
):
    marker = tmp_path / "imported-on-this-host"
    hostile_branch(repo, marker)
    base = _git(repo, "rev-parse", "base")
    monkeypatch.setenv("CONTAINER_ENGINE", "no-such-engine")
    args = ("--containers", "--jobs", "softmax", "--seeds", "0", *TINY)
    code, out, err = compare(repo, "base", "hostile", *args)
    assert code == 1 and out == "", err
    assert err.splitlines() == [
        "reading base and hostile as git revisions",
        f"error: BASE base ({base[:10]}): no images can be built: CONTAINER_ENGINE=no-such-engine: "
        "not found on PATH (expected podman or docker)",
    ]
    assert not marker.exists()
    assert not (repo / "build").exists()  # no checkout, no copy of a tree, no plan, no log
