"""``bisect GOOD BAD --jobs softmax`` and ``history softmax`` on a scratch repository of eight
commits after ``base``, one of which lowers softmax's learning rate tenfold.

The commits that leave softmax's code fingerprint alone (the README, a comment, a default in
another job's module, a comment elsewhere) are never run; the three that change it are the
candidates, and a binary search over them runs at most four versions of softmax (GOOD's among
them). Runs are tiny (real MNIST, about a second each).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_ab import (
    TINY,
    _default_signals,
    _git,
    commit,
    edit,
    make_repo,
    runs_made,
    state_of,
    wait_for_running,
)

pytestmark = pytest.mark.slow

SEEDS = ("--seeds", "0-2")


def suite(repo: Path, *args: str, wait: bool = True):
    """``mnist-suite ARGS`` run from ``repo`` by the repository's own code; without ``wait``,
    the started process."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    argv = [sys.executable, "-m", "mnist_suite", *args]
    if not wait:
        return subprocess.Popen(
            argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_default_signals,
        )  # fmt: skip
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout, done.stderr


def eight_commits(repo: Path) -> dict[str, str]:
    """The commits after ``base``, by what they do; ``lr`` is the one that makes softmax worse."""
    shas = {}
    (repo / "README.md").write_text("A scratch copy of the suite.\n")
    shas["readme"] = commit(repo, "a README")
    edit(repo, "jobs/softmax.py", "    lr: float = 0.5", "    # the peak rate\n    lr: float = 0.5")
    shas["comment"] = commit(repo, "a comment in softmax")
    edit(repo, "jobs/softmax.py", "must be in [0, {len(x)}] (0 = all)", "outside [0, {len(x)}]")
    shas["harmless"] = commit(repo, "softmax: a shorter message")
    # Module-level code of another job's module: softmax's runs never import it.
    edit(repo, "jobs/mlp.py", "    hidden: int = 10  #", "    hidden: int = 12  #")
    shas["other-job"] = commit(repo, "mlp-original: a wider hidden layer")
    edit(repo, "jobs/softmax.py", "lr: float = 0.5", "lr: float = 0.05")
    shas["lr"] = commit(repo, "softmax: a tenth of the learning rate")
    edit(repo, "jobs/softmax.py", 'f"lr={self.lr} must be > 0"', 'f"lr={self.lr} must be > 0!"')
    shas["harmless-2"] = commit(repo, "softmax: a louder message")
    edit(repo, "compare.py", "SPEED_METRIC = ", "# the clock judged\nSPEED_METRIC = ")
    shas["comment-2"] = commit(repo, "a comment in compare")
    (repo / "README.md").write_text("A scratch copy of the suite, bisected.\n")
    shas["readme-2"] = commit(repo, "the README again")
    return shas


def fingerprints_run(repo: Path) -> set[str]:
    """The distinct code fingerprints of softmax among the runs made."""
    return {re.search(r"-c([0-9a-f]{12})$", p.parent.name).group(1) for p in runs_made(repo)}


def finished(repo: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in runs_made(repo) if state_of(p).get("state") == "done"}


@pytest.fixture
def repo(tmp_path, mnist) -> tuple[Path, dict[str, str]]:
    root = make_repo(tmp_path / "repo")
    return root, eight_commits(root)


def test_bisect_names_the_commit_runs_only_candidates_resumes_and_each_ending(repo):
    root, shas = repo
    args = ("--jobs", "softmax", *SEEDS, *TINY)
    # Interrupted once a run is under way: every finished run stays, and the same call goes on
    # from them without making any of them again.
    child = suite(root, "bisect", "base", "HEAD", *args, wait=False)
    wait_for_running(root)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 130, err
    assert out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("stopping on SIGINT: ")
    before = finished(root)

    code, out, err = suite(root, "bisect", "base", "HEAD", *args)
    assert code == 1, err
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # not run again
    assert "8 commits after GOOD" in err and "5 leave softmax's code unchanged" in err
    lines = out.splitlines()
    assert "8 commits, 5 skipped (softmax's code unchanged), 3 candidates" in lines[0]
    assert lines[1] == f"first worse commit: {shas['lr']} softmax: a tenth of the learning rate"
    # The evidence: the culprit against the candidate before it, compare's table.
    assert lines[2] == f"base {shas['harmless'][:10]}" and lines[3] == f"new  {shas['lr'][:10]}"
    row = next(ln for ln in lines[4:] if "test_accuracy" in ln)
    assert " worse " in row and "paired, 3 seeds" in row
    # GOOD, BAD's code, and the two the search needed: four versions of softmax, no more.
    assert len(fingerprints_run(root)) <= 4
    assert len(runs_made(root)) == 3 * len(fingerprints_run(root))
    made = finished(root)

    # Again: every run is there, nothing is trained, the same answer.
    code, again, err = suite(root, "bisect", "base", "HEAD", *args)
    assert code == 1 and again == out, err
    assert finished(root) == made

    # Up to the commit before the culprit: the harmless candidate is no worse (its runs are
    # the same computation as GOOD's: identical), and nothing is run for it.
    code, out, err = suite(root, "bisect", "base", shas["other-job"], *args)
    assert code == 0, err
    assert out.splitlines()[-1] == "no commit between GOOD and BAD is worse"
    assert "4 commits, 3 skipped" in out.splitlines()[0]
    assert finished(root) == made

    # One seed: compare cannot judge a difference, and bisect says so.
    code, out, err = suite(root, "bisect", "base", "HEAD", "--jobs", "softmax", "--seeds", "0",
                           *TINY)  # fmt: skip
    assert code == 4, err
    assert re.search(r"^inconclusive at [0-9a-f]{10} .*: more seeds needed", out, re.M), out
    assert finished(root) == made

    # The same from one seed, adding seeds until decided (looks at 1, 2 and 3 seeds): each
    # step's seeds come from the runs already made, and the culprit is found again.
    code, out, err = suite(root, "bisect", "base", "HEAD", "--jobs", "softmax", "--seeds", "0",
                           "--until-decided", "--max-seeds", "3", *TINY)  # fmt: skip
    assert code == 1, err
    assert out.splitlines()[1] == f"first worse commit: {shas['lr']} softmax: a tenth of the " \
        "learning rate"  # fmt: skip
    assert "looks at 1, 2, 3 seeds (K = 3)" in out and "decided at " in out
    assert re.search(r"^look 1 of 3, 1 seeds: 1 row still undecided", err, re.M), err
    assert finished(root) == made

    # The history of what those runs measured: one point per commit that made runs.
    code, out, err = suite(root, "history", "softmax", "--json")
    assert code == 0, err
    points = json.loads(out)["points"]
    base = _git(root, "rev-parse", "base")
    assert [p["commit"] for p in points] == [base, shas["harmless"], shas["lr"], shas["harmless-2"]]
    culprit = next(p for p in points if p["commit"] == shas["lr"])
    assert culprit["against_previous"]["verdict"] == "worse"
    assert culprit["against_previous"]["method"] == "paired"
    assert all(p["n"] == 3 for p in points)
    code, table, err = suite(root, "history", "softmax")
    assert code == 0 and shas["lr"][:10] in table and "worse" in table, err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (("HEAD", "base", "--jobs", "softmax"),
         "error: GOOD 'HEAD' is not on the first-parent line of BAD 'base'"),
        (("base", "nope", "--jobs", "softmax"), "error: BAD 'nope': no such revision in {repo}"),
        (("base", "HEAD", "--jobs", "softmax", "mlp"), "error: bisect follows one job: --jobs JOB"),
        (("base", "HEAD", "--jobs", "softmax", "--metric", "accuracy"),
         "error: --metric 'accuracy': compared metrics are test_accuracy, test_mse, "
         "test_mse_pixels, final_train_loss, train_seconds"),
    ],
    ids=["reversed", "unknown", "two-jobs", "metric"],
)  # fmt: skip
def test_bad_usage_is_one_line_and_runs_nothing(repo, argv, line):
    root, _ = repo
    code, out, err = suite(root, "bisect", *argv)
    assert (code, out) == (2, ""), err
    assert err.strip().splitlines() == [line.format(repo=root)]
    assert runs_made(root) == []
