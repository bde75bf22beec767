"""The NumPy MLP jobs end to end: run records, TensorBoard, weights, determinism, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_suite.data import to_unit
from mnist_suite.jobs.mlp import random_shift
from mnist_suite.metrics import accuracy
from mnist_suite.nn import load_model
from mnist_suite.runs import load_run
from tests.conftest import hparams_tables, run_path

METRICS = ("test_accuracy", "train_accuracy", "dev_accuracy", "wall_seconds", "samples_per_second")


def check_run(path, mnist, kind: str, steps: list[int], epochs: list[int] | None = None) -> dict:
    """The invariants every finished MLP run keeps; returns its metrics. ``steps`` are the
    optimizer steps of the ``kind`` rows, ``epochs`` their epochs (epoch rows)."""
    run = load_run(path)
    assert run.state == "done"
    metrics = run.metrics
    assert all(isinstance(metrics[k], float) for k in METRICS)
    rows = [r for r in run.history if r["kind"] == kind]
    assert [r["step"] for r in rows] == steps
    assert [r.get("epoch") for r in rows] == (epochs or [None] * len(steps))
    assert rows[-1]["dev_accuracy"] == metrics["dev_accuracy"]
    final = [r for r in run.history if r["kind"] == "eval"]
    assert [r["test_accuracy"] for r in final] == [metrics["test_accuracy"]]  # scored once
    assert final[0]["step"] == max(r["step"] for r in run.history)

    acc = EventAccumulator(str(path / "tb"))
    acc.Reload()
    for name in ("train_loss", "dev_accuracy"):
        tb = [e.value for e in acc.Scalars(f"{kind}/{name}")]
        np.testing.assert_allclose(tb, [r[name] for r in rows], rtol=1e-6)

    with np.load(path / "artifacts" / "confusion.npz", allow_pickle=False) as f:
        matrix = f["matrix"]
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    assert np.trace(matrix) / 10000 == pytest.approx(metrics["test_accuracy"])
    # The saved weights alone reproduce the reported test accuracy.
    model = load_model(path / "artifacts" / "weights.npz")
    x_test = to_unit(mnist.x_test, model.params[0].dtype)
    assert accuracy(model.predict_log_proba(x_test), mnist.y_test) == metrics["test_accuracy"]
    return metrics


def test_mlp_seed_quick(run_cli, mnist):
    code, out, _ = run_cli("run", "mlp-original", "--profile", "quick")
    assert code == 0
    path = run_path(out)
    metrics = check_run(path, mnist, "step", [250, 500, 750, 1000])
    assert 0.75 < metrics["test_accuracy"] < 0.95  # 1000 of the original's 5000 iterations
    # Draws with replacement: an epoch is 59,000 / 100 = 590 of them.
    epochs = [r for r in load_run(path).history if r["kind"] == "epoch"]
    assert [(r["step"], r["epoch"]) for r in epochs] == [(590, 1)]
    model = load_model(path / "artifacts" / "weights.npz")
    assert repr(model) == "Sequential(Linear(784→10), ReLU(), Linear(10→10), LogSoftmax())"
    assert model.params[0].dtype == np.float64  # the original's weights were float64


def test_mlp_quick(run_cli, mnist):
    """Distortions, label smoothing and the weight average on: the averaged weights are saved."""
    code, out, _ = run_cli("run", "mlp", "--profile", "quick", "--set", "weight_average=0.99")
    assert code == 0
    # 9,000 training images at batch 128: 71 steps an epoch.
    metrics = check_run(run_path(out), mnist, "epoch", [71, 142, 213], [1, 2, 3])
    assert metrics["test_accuracy"] > 0.9
    assert metrics["parameters"] == 784 * 256 + 256 + 256 * 10 + 10
    assert 0 < metrics["dev_accuracy_last_iterate"] <= 1


def test_mlp_fast_quick_probes_dev_accuracy(run_cli, mnist):
    code, out, _ = run_cli("run", "mlp-fast", "--profile", "quick")
    assert code == 0
    path = run_path(out)
    metrics = check_run(path, mnist, "epoch", [36, 72, 108], [1, 2, 3])  # batch 256
    assert metrics["test_accuracy"] > 0.9
    assert metrics["parameters"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    probes = [r for r in load_run(path).history if r["kind"] == "step"]
    assert [r["step"] for r in probes] == [50, 100]
    # Time to target counts optimizer steps, whichever evaluation reached it first.
    reached = [s for s in metrics["time_to_target"]["step"].values() if s is not None]
    assert all(s in {36, 50, 72, 100, 108} for s in reached)


def test_same_seed_same_weights_bit_for_bit(run_cli, tmp_path):
    def weights(seed: int, out: str) -> dict[str, bytes]:
        code, stdout, _ = run_cli(
            "run", "mlp", "--profile", "quick", "--seed", str(seed), "--out", str(tmp_path / out)
        )
        assert code == 0
        with np.load(run_path(stdout) / "artifacts" / "weights.npz", allow_pickle=False) as f:
            return {k: f[k].tobytes() for k in f.files}

    first, again, other = weights(1, "a"), weights(1, "b"), weights(2, "c")
    assert first == again
    assert first["W1"] != other["W1"]


def test_numpy_jobs_never_import_tensorflow(tmp_path, mnist):
    code = f"""
import sys
import mnist_suite.nn
from mnist_suite.cli import main
assert main(['run', 'mlp', '--profile', 'quick', '--out', r'{tmp_path}']) == 0
assert main(['run', 'mlp-original', '--profile', 'quick', '--out', r'{tmp_path}']) == 0
assert 'tensorflow' not in sys.modules, 'tensorflow was imported'
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("job", "setting", "message"),
    [
        ("mlp", "lr=0", "lr=0.0 must be > 0"),
        ("mlp-original", "lr=-0.001", "lr=-0.001 must be > 0"),
        ("mlp", "batch_size=0", "batch_size=0 must be > 0"),
        ("mlp", "batch_size=55001", "batch_size=55001 exceeds the 55000 training samples"),
        ("mlp", "n_train=1000", "n_dev=5000 must be in [0, 1000)"),
        ("mlp-original", "batch_size=59001", "batch_size=59001 exceeds the 59000 training samples"),
        ("mlp", "init=xavier", "unknown initialiser 'xavier'"),
        ("mlp", "schedule=linear", "unknown schedule 'linear'"),
        ("mlp", "widths=512,0", "widths=(512, 0) must be > 0"),
        ("mlp", "zoom=1.5", "zoom must be < 1"),
        ("mlp", "elastic_sigma=0", "sigma must be > 0"),
        ("mlp", "label_smoothing=1", "label_smoothing=1.0 and weight_average=0.0"),
        ("mlp-fast", "eval_every=-1", "eval_every=-1 must be >= 0"),
    ],
)
def test_bad_settings_fail_before_training(run_cli, tmp_path, job, setting, message):
    code, _, err = run_cli("run", job, "--set", setting)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # no run directory, no half-written files


def test_divergence_is_recorded_with_its_step(run_cli):
    code, out, err = run_cli("run", "mlp", "--profile", "quick", "--set", "lr=1e4")
    assert code == 3 and "diverged" in err
    run = load_run(run_path(out))
    assert run.state == "diverged"
    assert run.status["diverged_at_step"] == run.metrics["diverged_at_step"] > 0
    assert run.metrics["final_train_loss"] is None  # nan, stored as JSON null


def test_random_shift_moves_each_image_by_at_most_two_pixels():
    rng = np.random.default_rng(0)
    images = np.zeros((500, 28, 28), np.uint8)
    images[:, 14, 14] = 255  # one bright pixel in the middle
    shifted = random_shift(images, 2, rng)
    rows, cols = np.divmod(shifted.reshape(500, -1).argmax(axis=1), 28)
    assert shifted.shape == images.shape and shifted.dtype == np.uint8
    assert (shifted == 255).sum(axis=(1, 2)).tolist() == [1] * 500  # nothing lost or duplicated
    assert set(rows - 14) == set(cols - 14) == {-2, -1, 0, 1, 2}  # every shift drawn


def test_predict_cli_writes_the_titled_figure(run_cli, tmp_path):
    code, out, _ = run_cli("run", "mlp-original", "--profile", "quick")
    weights = run_path(out) / "artifacts" / "weights.npz"
    png = tmp_path / "fig" / "seven.png"
    code, out, _ = run_cli("predict", "--weights", str(weights), "--index", "0", "--out", str(png))
    assert code == 0 and "image #0 (label 7): prediction" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli(
        "predict", "--weights", str(weights), "--index", "10000", "--out", str(png)
    )
    assert code == 2 and "index 10000: the test set has images 0..9999" in err
    broken = tmp_path / "broken.npz"
    np.savez(broken, W1=np.zeros((10, 784)))
    code, _, err = run_cli("predict", "--weights", str(broken), "--index", "0", "--out", str(png))
    assert code == 2 and "no 'architecture' key" in err


@pytest.mark.slow
def test_mlp_seed_full_lands_in_the_seed_band(run_cli):
    """Seed: ≈ 92.5% test with the saved weights; band 91-94%."""
    code, out, _ = run_cli("run", "mlp-original")
    assert code == 0
    metrics = load_run(run_path(out)).metrics
    assert 0.91 <= metrics["test_accuracy"] <= 0.94


def test_seeds_are_one_session_group_in_their_jobs_hparams_experiment(run_cli, tmp_path):
    """TensorBoard's own HParams handlers on a job's folder: a 3-seed job is one session group
    of 3 successful sessions, its hparams typed, its metrics averaged over the seeds; another
    job's runs in the same runs folder are not in it."""
    from tensorboard.plugins.hparams import api_pb2

    out = tmp_path / "runs"
    code, _, err = run_cli(
        "run", "mlp-fast", "--profile", "quick", "--seeds", "0-2", "--runs", str(out)
    )
    assert code == 0, err
    code, _, err = run_cli("run", "softmax", "--profile", "quick", "--runs", str(out))
    assert code == 0, err
    experiment, groups = hparams_tables(out / "mlp-fast")
    infos = {h.name: h for h in experiment.hparam_infos}
    assert {"job", "profile", "widths", "max_shift", "lr"} <= set(infos) and "seed" not in infos
    assert infos["job"].type == api_pb2.DATA_TYPE_STRING
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64
    assert infos["nesterov"].type == api_pb2.DATA_TYPE_BOOL
    (mlp,) = groups.session_groups
    assert mlp.hparams["job"].string_value == "mlp-fast"
    assert len(mlp.sessions) == 3
    assert {s.status for s in mlp.sessions} == {api_pb2.STATUS_SUCCESS}
    accuracies = [
        load_run(out / "mlp-fast" / session.name.split("/tb")[0]).metrics["test_accuracy"]
        for session in mlp.sessions
    ]
    values = {v.name.tag: v.value for v in mlp.metric_values}
    assert values["eval/test_accuracy"] == pytest.approx(sum(accuracies) / 3, rel=1e-6)
