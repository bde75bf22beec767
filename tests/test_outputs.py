"""Output paths and destructive flags: validated before anything is created or deleted.

Also the disk-full fault: a run on a full filesystem ends ``failed`` with one line, exit 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from mnist_suite import runs
from mnist_suite.jobs import all_jobs
from mnist_suite.nn import mlp, save_model


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def one_line_error(code: int, err: str, expected_code: int = 2) -> None:
    assert code == expected_code, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err


@pytest.fixture
def mount(tmp_path):
    """Mount a small tmpfs (as root); yields a function(path, options) -> path."""
    mounted = []

    def make(path: Path, options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
        mounted.append(path)
        return path

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def done_softmax(run_cli, tmp_path) -> Path:
    code, out, err = run_cli(
        "run", "softmax-original", "--profile", "quick", "--set", "n_train=1000",
        "--runs", str(tmp_path / "runs"),
    )  # fmt: skip
    assert code == 0, err
    return Path(out.split()[1])


QUICK = ["softmax-original", "--profile", "quick", "--set", "n_train=1000"]


# --- run ------------------------------------------------------------------------------------


def test_run_into_a_file_is_one_line(run_cli, tmp_path):
    target = tmp_path / "file"
    target.write_text("mine")
    code, _, err = run_cli("run", *QUICK, "--runs", str(target))
    one_line_error(code, err)
    assert "is a file; expected a folder" in err and target.read_text() == "mine"
    code, _, err = run_cli("run", *QUICK, "--runs", str(target / "sub"))
    one_line_error(code, err)


def test_run_into_a_read_only_folder_is_one_line(run_cli, tmp_path, mount):
    folder = mount(tmp_path / "ro", "ro,size=1m")
    code, _, err = run_cli("run", *QUICK, "--runs", str(folder / "runs"))
    one_line_error(code, err, expected_code=1)  # a fault of the machine, not of the usage
    assert "not writable (Read-only file system)" in err


def test_force_with_bad_data_deletes_nothing(run_cli, done_softmax, tmp_path):
    before = snapshot(done_softmax)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    code, _, err = run_cli(
        "run", *QUICK, "--runs", str(done_softmax.parents[1]), "--force", "--data", str(bad)
    )
    one_line_error(code, err)
    assert str(bad) in err
    assert snapshot(done_softmax) == before


def test_force_with_a_bad_override_or_seed_deletes_nothing(run_cli, done_softmax):
    before = snapshot(done_softmax)
    runs_dir = str(done_softmax.parents[1])
    for extra in (["--set", "eta=inf"], ["--seed", "-1"], ["--set", "nope=1"]):
        code, _, err = run_cli("run", *QUICK, "--runs", runs_dir, "--force", *extra)
        one_line_error(code, err)
    assert snapshot(done_softmax) == before


def test_bad_data_creates_no_run_folder(run_cli, tmp_path):
    code, _, err = run_cli(
        "run", *QUICK, "--runs", str(tmp_path / "runs"), "--data", str(tmp_path / "none")
    )
    one_line_error(code, err)
    assert not (tmp_path / "runs").exists()


def _float_fields(config) -> list[str]:
    hints = typing.get_type_hints(type(config))
    return [
        f.name
        for f in dataclasses.fields(config)
        if hints[f.name] is float or typing.get_args(hints[f.name])[:1] == (float,)
    ]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_every_job_refuses_non_finite_floats(run_cli, value):
    checked = 0
    for name, job in all_jobs().items():
        for field in _float_fields(job.config()):
            code, _, err = run_cli("cells", name, "--set", f"{field}={value}")
            one_line_error(code, err)
            assert "finite" in err, (name, field, err)
            checked += 1
    assert checked >= 5


# --- report ---------------------------------------------------------------------------------


def test_report_out_that_is_a_file_or_read_only_is_one_line(run_cli, done_softmax, tmp_path, mount):
    runs_dir = str(done_softmax.parents[1])
    target = tmp_path / "file"
    target.write_text("mine")
    code, _, err = run_cli("report", "--runs", runs_dir, "--out", str(target))
    one_line_error(code, err)
    assert target.read_text() == "mine"
    folder = mount(tmp_path / "ro", "ro,size=1m")
    code, _, err = run_cli("report", "--runs", runs_dir, "--out", str(folder / "report"))
    one_line_error(code, err, expected_code=1)
    assert "not writable" in err


def test_report_never_replaces_the_runs_folder(run_cli, done_softmax):
    runs_dir = done_softmax.parents[1]
    before = snapshot(runs_dir)
    (runs_dir / "results.json").write_text("{}")  # as if it were a report folder
    for out in (runs_dir, runs_dir.parent, runs_dir / "report"):
        code, _, err = run_cli("report", "--runs", str(runs_dir), "--out", str(out))
        one_line_error(code, err)
    (runs_dir / "results.json").unlink()
    assert snapshot(runs_dir) == before


# --- predict --------------------------------------------------------------------------------


@pytest.fixture
def weights(tmp_path) -> Path:
    return save_model(tmp_path / "w.npz", mlp((784, 16, 10), rng=np.random.default_rng(0)))


def predict(run_cli, weights: Path, out: str) -> tuple[int, str, str]:
    return run_cli("predict", "--weights", str(weights), "--index", "0", "--out", out)


def test_predict_never_overwrites_its_inputs(run_cli, weights, mnist):
    before = weights.read_bytes()
    for out in (weights, weights.parent / "." / weights.name):
        code, _, err = predict(run_cli, weights, str(out))
        one_line_error(code, err)
        assert "is also --weights" in err
    assert weights.read_bytes() == before


def test_predict_out_that_is_a_folder_or_read_only_is_one_line(run_cli, weights, tmp_path, mount):
    code, _, err = predict(run_cli, weights, str(tmp_path))
    one_line_error(code, err)
    folder = mount(tmp_path / "ro", "ro,size=1m")
    code, _, err = predict(run_cli, weights, str(folder / "p.png"))
    one_line_error(code, err, expected_code=1)
    assert "not writable" in err


def test_predict_still_works(run_cli, weights, tmp_path):
    code, _, err = predict(run_cli, weights, str(tmp_path / "p.png"))
    assert code == 0, err
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


# --- no output among runs ------------------------------------------------------------------


def tree(folder: Path) -> dict[Path, bytes | None]:
    """Every path under ``folder``: a file's bytes, None for anything else."""
    return {p: p.read_bytes() if p.is_file() else None for p in sorted(Path(folder).rglob("*"))}


def test_no_output_lands_in_a_runs_folder_or_a_run(run_cli, done_softmax, weights, tmp_path,
                                                  monkeypatch):  # fmt: skip
    """Every path a command writes (predict --out, plan --save, report --out, slurm --logs,
    run --runs) is refused inside the runs folder it uses (a run's records, its claim, an item's
    log) and inside any run folder elsewhere: one line, exit 2, nothing created or changed, the
    finished run still done."""
    runs_dir = done_softmax.parents[1]
    job = done_softmax.parent.name
    copied = tmp_path / "copy" / job / done_softmax.name  # a run folder no --runs names
    shutil.copytree(done_softmax, copied)
    monkeypatch.setenv("MNIST_SUITE_RUNS", str(runs_dir))  # predict's runs folder
    in_runs = [
        done_softmax / "metrics.json",
        done_softmax / "artifacts" / "x",
        done_softmax.with_name(done_softmax.name + ".claim"),
        runs_dir / ".logs" / job / f"{done_softmax.name}.log",
    ]
    in_run = [copied / "metrics.json", copied / "tb" / "x"]
    plan = ["softmax-original", "--profile", "quick", "--runs", str(runs_dir)]
    commands = {
        "predict": lambda t: ["predict", "--weights", str(weights), "--index", "0", "--out", t],
        "plan": lambda t: ["plan", *plan, "--save", t],
        "report": lambda t: ["report", "--runs", str(runs_dir), "--out", t],
        "slurm": lambda t: ["slurm", *plan, "--mode", "python", "--logs", t],
        "run": lambda t: ["run", *QUICK, "--runs", t],
    }
    before = tree(tmp_path)
    for name, argv in commands.items():
        for target in [*(in_runs if name != "run" else []), *in_run]:
            code, out, err = run_cli(*argv(str(target)))
            one_line_error(code, err)
            where = "runs folder" if target in in_runs else "run folder"
            assert f": is inside the {where} " in err and "write it elsewhere" in err, (name, err)
            assert out == "", (name, out)
    assert tree(tmp_path) == before
    assert runs.load_run(done_softmax).state == "done"
    code, out, _ = run_cli("runs", "--runs", str(runs_dir))
    assert code == 0 and out.strip().endswith("1 runs: 1 done"), out


# --- faults: disk full ----------------------------------------------------------------------

FILLER = r"""
import sys
from dataclasses import dataclass
import numpy as np
from mnist_suite.cli import main
from mnist_suite.jobs import Job, register

@dataclass(frozen=True)
class FillConfig:
    megabytes: int = 4

def fill(cfg, run):
    for step in range(3):
        run.log(step, "epoch", train_loss=1.0)
    run.save_arrays("big", noise=np.random.default_rng(0).random(cfg.megabytes << 17))
    return {"test_accuracy": 0.5}

register(Job("fill", "fills the disk", FillConfig, fill))
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_ends_failed_with_one_line_and_no_partial_json(tmp_path, mount, mnist):
    runs_dir = mount(tmp_path / "full", "size=256k")
    proc = subprocess.run(
        [sys.executable, "-c", FILLER, "run", "fill", "--runs", str(runs_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    one_line_error(proc.returncode, proc.stderr, expected_code=1)
    assert "No space left on device" in proc.stderr
    (run_dir,) = runs.find_runs(runs_dir)
    run = runs.load_run(run_dir)
    assert run.state == "failed" and "No space left" in run.status["message"]
    for path in run_dir.rglob("*.json"):
        json.loads(path.read_text())  # every JSON file is whole
    assert not list(runs_dir.rglob("*.tmp")) and not list(runs_dir.rglob("*.claim"))


def _fill(disk: Path, leave: int) -> None:
    """Fill the filesystem at ``disk`` but ``leave`` bytes (a file written until ENOSPC, then
    cut back)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def test_a_run_the_disk_fills_under_records_its_failure_and_keeps_the_finished_run(
    run_cli, tmp_path, mount
):
    disk = mount(tmp_path / "disk", "size=512k")
    runs_dir = disk / "runs"
    code, _, err = run_cli("run", *QUICK, "--runs", str(runs_dir))
    assert code == 0, err
    (done,) = runs.find_runs(runs_dir)
    before = snapshot(done)
    _fill(disk, 24 << 10)  # room for its claim and first records, not for its events
    code, _, err = run_cli("run", *QUICK, "--seed", "1", "--runs", str(runs_dir))
    assert code == 1 and "Traceback" not in err, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    (failed,) = [p for p in runs.find_runs(runs_dir) if p != done]
    assert "No space left on device" in line and str(failed) in line, line
    assert runs.load_run(failed).state == "failed"  # not left `running` by an events flush
    assert snapshot(done) == before
    assert not list(disk.rglob("*.tmp")) and not list(disk.rglob("*.claim"))


def test_a_report_the_disk_fills_under_is_one_line_and_keeps_the_old_report(
    run_cli, done_softmax, tmp_path, mount
):
    disk = mount(tmp_path / "disk", "size=4m")
    out = disk / "report"
    runs_dir = str(done_softmax.parents[1])
    code, _, err = run_cli("report", "--runs", runs_dir, "--out", str(out))
    assert code == 0, err
    before = snapshot(out)
    _fill(disk, 16 << 10)
    code, _, err = run_cli("report", "--runs", runs_dir, "--out", str(out))
    one_line_error(code, err, expected_code=1)
    assert err == f"error: out {out}: cannot write the report (No space left on device)\n"
    assert snapshot(out) == before
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "report"]  # no temp folder left


def test_a_plan_file_missing_is_bad_usage_and_one_the_disk_cannot_read_a_fault(
    run_cli, tmp_path, monkeypatch
):
    plan = tmp_path / "plan.json"
    code, _, err = run_cli("run", "--plan", str(plan), "--index", "0")
    one_line_error(code, err)  # a path the user gave that does not exist: exit 2
    assert err == f"error: plan {plan}: no such file\n"
    code, _, err = run_cli("plan", *QUICK, "--save", str(plan))
    assert code == 0, err
    read = os.read

    def failing(fd: int, n: int) -> bytes:  # an I/O error reading this one file only
        if os.readlink(f"/proc/self/fd/{fd}") == str(plan):
            raise OSError(5, "Input/output error")
        return read(fd, n)

    monkeypatch.setattr(os, "read", failing)
    code, _, err = run_cli("run", "--plan", str(plan), "--index", "0")
    one_line_error(code, err, expected_code=1)
    assert err == f"error: plan {plan}: cannot read (Input/output error)\n"
    assert not (tmp_path / "runs").exists()
