"""What the terminal shows: the pool's progress (lines without a terminal, a status line on
one), skipped items said to be skipped, and `runs` with its columns, --json and --summary."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from mnist_suite import fingerprint
from mnist_suite.cli import main
from mnist_suite.launch import LaunchOptions
from mnist_suite.launch.local import LocalLauncher
from mnist_suite.launch.watch import PoolProgress, clock, latest_epoch
from mnist_suite.plan import build_plan, run_dir


def fake_done(runs: Path, item, wall: float = 4.0, accuracy: float = 0.9, code="current"):
    path = run_dir(runs, item)
    path.mkdir(parents=True)
    code = fingerprint.for_job_name(item.job) if code == "current" else code
    config = {"job": item.job, "cell": item.cell, "profile": item.profile, "seed": item.seed}
    config |= {"run_id": item.run_id, "config": {"lr": 0.1}}
    config |= {"fingerprint": code} if code else {}
    (path / "config.json").write_text(json.dumps(config))
    status = {"state": "done", "ended_at": "2026-01-02T03:04:05.000+00:00"}
    (path / "status.json").write_text(json.dumps(status))
    metrics = {"wall_seconds": wall, "test_accuracy": accuracy}
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_events_are_lines_without_a_terminal(tmp_path):
    items = build_plan(["softmax"], profile="quick", seeds=(0, 1, 2))
    expected = {0: 5.0, 1: 5.0, 2: 15.0}
    lines: list[str] = []
    progress = PoolProgress(items, expected, tmp_path, workers=1, echo=lines.append)
    progress.started(items[0])
    progress.finished(items[0], "done", 0, 10.0)
    progress.skipped(items[1], "done, already recorded")
    progress.started(items[2])
    progress.finished(items[2], "failed", 1, 2.0)
    progress.close()
    assert lines[0].startswith("start #0 softmax seed 0 (done 0 · running 1 · failed 0")
    assert lines[1].startswith("[1/3] #0 softmax seed 0: done (exit 0, 10.0 s) · done 1 ·")
    # Item 0 took twice its estimate: items 1 and 2 at that pace, 10 + 30 s on one worker.
    assert "ETA 0:40" in lines[1]
    assert lines[2] == "[2/3] #1 softmax seed 1: skipped (done, already recorded)"
    assert "failed 1 · skipped 1 of 3" in lines[4]


def test_the_eta_scales_every_estimate_by_the_pools_pace_not_by_the_first_items(tmp_path):
    """A suite starts with its longest items: their times must not stand for the short ones;
    each job's own pace scales its items once one of them has finished."""
    items = build_plan(["softmax", "mlp-fast"], profile="quick", seeds=(0, 1, 2))
    expected = {i.index: (100.0 if i.job == "mlp-fast" else 10.0) for i in items}
    progress = PoolProgress(items, expected, tmp_path, workers=2, echo=lambda line: None)
    assert progress.eta() == (3 * 100.0 + 3 * 10.0) / 2  # before any finishes: the estimates
    long = [i for i in items if i.job == "mlp-fast"]
    short = [i for i in items if i.job == "softmax"]
    progress.finished(long[0], "done", 0, 150.0)  # 1.5 times its estimate
    progress.finished(long[1], "done", 0, 150.0)
    assert progress.pace("mlp-fast") == progress.pace("softmax") == progress.pace() == 1.5
    # Left: one mlp-fast and three softmax at 1.5 times their estimates, over two workers.
    assert progress.eta() == 1.5 * (100.0 + 3 * 10.0) / 2
    progress.finished(short[0], "done", 0, 5.0)  # softmax runs at half its estimate here
    assert progress.pace("softmax") == 0.5 and progress.pace("mlp-fast") == 1.5
    assert progress.eta() == (1.5 * 100.0 + 0.5 * 2 * 10.0) / 2
    progress.finished(long[2], "failed", 1, 1.0)  # a failure says nothing of the pace
    assert progress.pace("mlp-fast") == 1.5


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_status_line_with_the_running_epochs(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    items = build_plan(["softmax"], profile="quick", seeds=(0, 1))
    history = run_dir(tmp_path, items[0]) / "history.jsonl"
    history.parent.mkdir(parents=True)
    rows = [{"kind": "epoch", "step": 1, "time": 0.5, "dev_accuracy": 0.9}]
    rows.append({"kind": "batch", "step": 7, "time": 0.6, "loss": 0.3})
    history.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "epo')  # torn
    term, lines = Terminal(), []
    progress = PoolProgress(
        items, {0: 1.0, 1: 1.0}, tmp_path, 2, lines.append, PoolProgress.for_terminal(term)
    )
    progress.started(items[0])
    assert lines == []  # a start redraws the status line instead of printing a line
    shown = term.getvalue().split("\r\033[K")[-1]
    assert shown.startswith("done 0 · running 1 · failed 0 · skipped 0 of 2")
    assert "softmax s0: epoch 1 dev_accuracy=0.9" in shown
    progress.finished(items[0], "done", 0, 1.0)
    assert lines[0].startswith("[1/2] #0 softmax seed 0: done")


def test_latest_epoch_and_clock(tmp_path):
    assert latest_epoch(tmp_path / "none.jsonl") == ""
    history = tmp_path / "history.jsonl"
    rows = [
        {"kind": "epoch", "step": 94, "epoch": 2, "time": 0.5, "dev_accuracy": 0.9},
        {"kind": "step", "step": 100, "time": 0.6, "dev_accuracy": 0.91},
    ]
    history.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert latest_epoch(history) == "epoch 2 dev_accuracy=0.9"  # its epoch, not its step
    assert clock(59.6) == "1:00" and clock(3725) == "1:02:05"


def test_the_pool_skips_recorded_items_without_a_process_and_says_skipped(tmp_path):
    items = build_plan(["softmax"], profile="quick", seeds=(0, 1))
    for item in items:
        fake_done(tmp_path, item)
    lines: list[str] = []
    launcher = LocalLauncher(python=sys.executable, echo=lines.append)
    codes = launcher.launch(items, LaunchOptions(runs=tmp_path, workers=2))
    assert codes == {0: 0, 1: 0}
    skipped = [line for line in lines if line.startswith("[")]
    assert skipped == [
        f"[{i + 1}/2] #{i} softmax seed {i}: skipped (done, already recorded)" for i in (0, 1)
    ]
    # No process was started: each item's log holds one line, the pool's skip note.
    for log in (tmp_path / ".logs").rglob("*.log"):
        (line,) = log.read_text().splitlines()
        assert line.startswith("==== ") and "skipped (done, already recorded)" in line


def test_run_says_skipped_for_a_recorded_item(tmp_path, capsys):
    item = build_plan(["softmax"], profile="quick", seeds=(0,))[0]
    fake_done(tmp_path, item)
    code = main(["run", "softmax", "--profile", "quick", "--runs", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("skipped ") and "(done, already recorded, skipped)" in out


def test_runs_columns_json_and_summary(tmp_path, capsys):
    items = build_plan(["softmax"], profile="quick", seeds=(0, 1, 2))
    for item, accuracy in zip(items, (0.90, 0.91, 0.92), strict=True):
        fake_done(tmp_path, item, accuracy=accuracy, code="current" if item.seed else None)
    assert main(["runs", "--runs", str(tmp_path)]) == 0  # each job at its newest code
    listed = capsys.readouterr()
    assert listed.out.splitlines()[-1] == "2 runs: 2 done"
    assert listed.err == "note: 1 runs of older code left out (--all-code shows them)\n"
    assert main(["runs", "--runs", str(tmp_path), "--all-code"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "state", "job", "cell", "profile", "seed", "headline", "wall", "finished", "code", "run",
        "id",
    ]  # fmt: skip
    assert out[1].split()[:5] == ["outdated", "softmax", "-", "quick", "0"]
    assert "(unknown)" in out[1] and "2026-01-02 03:04:05" in out[2]
    assert out[-1] == "3 runs: 1 outdated, 2 done"
    assert main(["runs", "--runs", str(tmp_path), "--json", "--all-code"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert [r["seed"] for r in rows] == [0, 1, 2] and rows[0]["code"] == "unknown"
    assert rows[1]["fingerprint"] == fingerprint.for_job_name("softmax")
    assert rows[1]["wall_seconds"] == 4.0 and rows[1]["finished_at"].startswith("2026-01-02")
    assert main(["runs", "--runs", str(tmp_path), "--summary", "--all-code"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:6] == ["softmax", "-", "quick", "test_accuracy", "3", "91.00"]
    assert "80.10%" in table[1] and "MIXED" in table[1]  # the original's figure; two code versions


def test_runs_on_an_empty_or_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["runs", "--runs", str(tmp_path / "nope")]) == 0
    assert capsys.readouterr().out == f"no runs in {tmp_path / 'nope'} (no such folder)\n"
    assert main(["runs", "--runs", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no runs in {tmp_path}\n"
