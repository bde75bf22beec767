"""The sgd-* jobs end to end through the CLI: records, determinism, divergence, resume, HParams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnist_suite.runs import find_runs, load_run
from tests.conftest import hparams_tables, run_path

pytestmark = pytest.mark.slow  # each test trains (quick profiles, a few seconds each)


def _metrics(path):
    return load_run(path).metrics


def test_sgd_seed_quick_records_a_complete_run(run_cli):
    code, out, _ = run_cli("run", "sgd-original", "--profile", "quick")
    assert code == 0
    run = load_run(run_path(out))
    m = run.metrics
    assert run.state == "done"
    assert m["steps"] == 6000 // 32 + 1  # 188 batches, the last one partial
    assert m["parameters"] == 26_506
    assert 0.75 < m["test_accuracy"] <= 1.0
    assert m["final_train_loss"] < m["untrained_train_loss"]
    assert abs(m["untrained_train_loss"] - math.log(10)) < 0.2  # Glorot init ~ uniform guess
    assert m["best_epoch"] == 1 and m["selected_on"].startswith("last epoch")
    assert "dev_accuracy" not in m  # the original had no dev split
    assert m["time_to_target"]["evaluations"] == 0
    assert m["time_to_target"]["seconds"] == {"0.97": None, "0.98": None, "0.99": None}
    batches = [r for r in run.history if r["kind"] == "step"]
    assert [r["step"] for r in batches] == list(range(1, m["steps"] + 1))
    epochs = [r for r in run.history if r["kind"] == "epoch"]
    assert [(r["step"], r["epoch"]) for r in epochs] == [(0, 0), (m["steps"], 1)]
    with np.load(run.path / "artifacts" / "batch_losses.npz", allow_pickle=False) as f:
        np.testing.assert_allclose(f["loss"], [r["train_loss"] for r in batches], rtol=1e-6)
        assert int(f["steps_per_epoch"]) == m["steps"]


def test_same_seed_same_numbers_other_seed_other_numbers(run_cli, tmp_path):
    runs = []
    for out, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        argv = ["run", "sgd-original", "--profile", "quick", "--set", "n_train=2000"]
        code, stdout, _ = run_cli(*argv, "--seed", seed, "--out", str(tmp_path / out))
        assert code == 0
        runs.append(_metrics(run_path(stdout)))
    keys = ("test_accuracy", "final_train_loss", "final_batch_loss", "untrained_train_loss")
    assert [runs[0][k] for k in keys] == [runs[1][k] for k in keys]
    assert runs[0]["final_train_loss"] != runs[2]["final_train_loss"]


def test_grid_survives_a_diverging_point_and_resumes(run_cli, tmp_path):
    out = tmp_path / "runs"
    argv = [
        *("run", "sgd-grid", "--profile", "quick", "--out", str(out)),
        *("--set", "lrs=1e9,0.1", "--set", "batch_sizes=64", "--set", "epochs=2"),
    ]
    code, stdout, err = run_cli(*argv)
    assert code == 0  # in a batch, divergence is a result, not a failure
    assert "diverged" in err
    runs = {load_run(p).cell: load_run(p) for p in find_runs(out, "sgd-grid")}
    bad, good = runs["net32-32-b64-lr1e+09"], runs["net32-32-b64-lr0.1"]
    assert bad.state == "diverged"
    assert bad.status["diverged_at_step"] == bad.metrics["diverged_at_step"] >= 1
    with np.load(bad.path / "artifacts" / "batch_losses.npz", allow_pickle=False) as f:
        assert len(f["loss"]) == bad.metrics["diverged_at_step"]  # curve kept to the blow-up
    assert good.state == "done"
    by_epoch = good.metrics["dev_accuracy_by_epoch"]
    assert len(by_epoch) == 2
    assert good.metrics["dev_accuracy"] == max(by_epoch)  # the epoch kept is chosen on dev
    assert good.metrics["best_epoch"] == 1 + by_epoch.index(max(by_epoch))
    tests = [r for r in good.history if "test_accuracy" in r]
    assert len(tests) == 1  # the test set is looked at once
    # A trained epoch's clock has the name every job gives it (TensorBoard: epoch/epoch_seconds).
    epochs = [r for r in good.history if r.get("kind") == "epoch" and r["step"] > 0]
    assert epochs and all(r["epoch_seconds"] > 0 and "seconds" not in r for r in epochs)

    code, stdout, _ = run_cli(*argv)  # re-run: both points already recorded
    assert code == 0
    assert stdout.count("already recorded, skipped") == 2


def test_grid_is_readable_by_tensorboards_hparams_dashboard(run_cli, tmp_path):
    out = tmp_path / "runs"
    code, _, _ = run_cli("run", "sgd-grid", "--profile", "quick", "--out", str(out))
    assert code == 0
    experiment, groups = hparams_tables(out / "sgd-grid")
    assert {h.name for h in experiment.hparam_infos} >= {
        "job",
        "cell",
        "profile",
        "lr",
        "batch_size",
        "widths",
        "reduction",
        "momentum",
    }
    assert {m.name.tag for m in experiment.metric_infos} >= {
        "eval/dev_accuracy",
        "eval/test_accuracy",
        "run/wall_seconds",
    }
    assert len(groups.session_groups) == 2  # the quick grid: batch 32 and 128
    for group in groups.session_groups:
        (session,) = group.sessions
        run = load_run(out / "sgd-grid" / session.name.split("/")[0])
        assert group.hparams["batch_size"].number_value == run.config["batch_size"]
        assert group.hparams["widths"].string_value == "32,32"
        assert "seed" not in group.hparams
        assert group.hparams["cell"].string_value == run.cell
        values = {v.name.tag: v.value for v in group.metric_values}
        assert values["eval/test_accuracy"] == pytest.approx(run.metrics["test_accuracy"], rel=1e-6)
        # The dev accuracy of the epoch the cell keeps, not of its last epoch.
        assert values["eval/dev_accuracy"] == pytest.approx(run.metrics["dev_accuracy"], rel=1e-6)


def test_lr_sweep_quick_keeps_every_batch_loss(run_cli, tmp_path):
    out = tmp_path / "runs"
    code, _, _ = run_cli("run", "sgd-lr-sweep", "--profile", "quick", "--out", str(out))
    assert code == 0
    runs = [load_run(p) for p in find_runs(out, "sgd-lr-sweep")]
    assert sorted(r.config["lr"] for r in runs) == [0.001, 0.01, 0.1]
    for run in runs:
        with np.load(run.path / "artifacts" / "batch_losses.npz", allow_pickle=False) as f:
            if run.state == "done":
                assert len(f["loss"]) == 3200 // 32
            else:
                assert run.state == "diverged"


def test_sgd_seed_full_reproduces_the_seed(run_cli):
    """The original's experiment on all of MNIST: 96.08% test, final train loss 0.087 (unseeded)."""
    code, out, _ = run_cli("run", "sgd-original")
    assert code == 0
    m = _metrics(run_path(out))
    assert 0.95 <= m["test_accuracy"] <= 0.97
    assert 0.04 <= m["final_train_loss"] <= 0.14
    assert m["steps"] == 5 * 1875


def test_lr_sweep_full_reproduces_the_seeds_figure(run_cli, tmp_path):
    """Seed: lr 0.1 stuck near ln 10 (2.3107), lr 0.01 -> 0.1689, lr 0.001 -> 0.2568."""
    out = tmp_path / "runs"
    code, _, _ = run_cli("run", "sgd-lr-sweep", "--out", str(out))
    assert code == 0  # the lr 0.1 cell never fails the sweep, whichever way it ends
    runs = {load_run(p).config["lr"]: load_run(p) for p in find_runs(out)}
    high = runs[0.1]
    assert high.state == "diverged" or high.metrics["stuck_at_chance"]
    assert 0.12 <= runs[0.01].metrics["final_train_loss"] <= 0.22
    assert 0.20 <= runs[0.001].metrics["final_train_loss"] <= 0.32
    for run in runs.values():
        with np.load(run.path / "artifacts" / "batch_losses.npz", allow_pickle=False) as f:
            steps = run.metrics.get("diverged_at_step", 1875)
            assert len(f["loss"]) == steps


def test_seed_set_weights_update_trains_like_assign_sub(run_cli, tmp_path):
    """The original slow update and ours, same seed and data: the same run up to float rounding."""
    metrics = {}
    for update in ("set_weights", "assign_sub"):
        code, out, _ = run_cli(
            *("run", "sgd-original", "--profile", "quick", "--out", str(tmp_path / update)),
            *("--set", "n_train=1024", "--set", f"update={update}"),
        )
        assert code == 0
        metrics[update] = _metrics(run_path(out))
    a, b = metrics["set_weights"], metrics["assign_sub"]
    assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-3)
    assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=2e-3)
