"""The first real jobs end to end: run directory, TensorBoard events, determinism, seed band."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_suite.runs import load_run
from tests.conftest import run_path


def test_softmax_seed_quick_writes_a_complete_run(run_cli):
    code, out, _ = run_cli("run", "softmax-original", "--profile", "quick")
    assert code == 0
    path = run_path(out)
    run = load_run(path)
    assert run.state == "done"
    assert run.config["n_train"] == 6000 and run.profile == "quick"
    metrics = run.metrics
    assert 0.6 < metrics["test_accuracy"] <= 1 and metrics["samples_per_second"] > 0
    # Per-sample SGD: the step is the number of samples seen.
    evals = [r for r in run.history if r["kind"] == "step"]
    assert [r["step"] for r in evals] == [1000, 2000, 3000, 4000, 5000, 6000]
    assert [(r["step"], r["epoch"]) for r in run.history if r["kind"] == "epoch"] == [(6000, 1)]
    acc = EventAccumulator(str(path / "tb"))
    acc.Reload()
    tb = [e.value for e in acc.Scalars("step/test_accuracy")]
    np.testing.assert_allclose(tb, [r["test_accuracy"] for r in evals], rtol=1e-6)
    (final,) = acc.Scalars("eval/test_accuracy")
    assert (final.step, final.value) == (6000, pytest.approx(metrics["test_accuracy"]))
    with np.load(path / "artifacts" / "confusion.npz", allow_pickle=False) as f:
        matrix = f["matrix"]
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    assert np.trace(matrix) / 10000 == pytest.approx(metrics["test_accuracy"])


@pytest.mark.parametrize("job", ["softmax-original", "softmax"])
def test_saved_weights_load_as_a_model_and_predict_serves_them(run_cli, mnist, tmp_path, job):
    """The z-score folded into the saved weights: the same predictions on unit pixels."""
    from mnist_suite.data import to_unit
    from mnist_suite.metrics import accuracy
    from mnist_suite.nn import load_model

    code, out, _ = run_cli("run", job, "--profile", "quick")
    assert code == 0
    path = run_path(out)
    model = load_model(path / "artifacts" / "weights.npz")
    x_test = to_unit(mnist.x_test, model.params[0].dtype)
    scores = model.predict_log_proba(x_test)  # (10000, 10)
    with np.load(path / "artifacts" / "confusion.npz", allow_pickle=False) as f:
        matrix = f["matrix"]
    # The saved confusion matrix came from the unfolded weights: the same predictions.
    assert abs(accuracy(scores, mnist.y_test) - np.trace(matrix) / 10000) <= 2e-4
    png = tmp_path / "p.png"
    weights = str(path / "artifacts" / "weights.npz")
    code, out, err = run_cli("predict", "--weights", weights, "--index", "0", "--out", str(png))
    assert code == 0, err
    assert "prediction" in out and png.read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_numbers_other_seed_other_numbers(run_cli, tmp_path):
    def weights(seed: int, out: str) -> tuple[np.ndarray, dict]:
        code, stdout, _ = run_cli(
            "run",
            "softmax",
            "--profile",
            "quick",
            "--seed",
            str(seed),
            "--out",
            str(tmp_path / out),
        )
        assert code == 0
        path = run_path(stdout)
        with np.load(path / "artifacts" / "weights.npz", allow_pickle=False) as f:
            w = f["W1"]
        metrics = json.loads((path / "metrics.json").read_text())
        return w, metrics

    w1, m1 = weights(1, "a")
    w2, m2 = weights(1, "b")
    w3, _ = weights(2, "c")
    np.testing.assert_array_equal(w1, w2)
    assert m1["test_accuracy"] == m2["test_accuracy"]
    assert not np.array_equal(w1, w3)


@pytest.mark.slow
def test_softmax_seed_full_lands_in_the_seed_band(run_cli):
    """Seed: 80.1% test, swinging 77-85% during the epoch; band 74-84%."""
    code, out, _ = run_cli("run", "softmax-original")
    assert code == 0
    metrics = load_run(run_path(out)).metrics
    assert 0.74 <= metrics["test_accuracy"] <= 0.84


@pytest.mark.slow
def test_softmax_done_right_beats_the_seed(run_cli):
    code, out, _ = run_cli("run", "softmax")
    assert code == 0
    metrics = load_run(run_path(out)).metrics
    assert metrics["test_accuracy"] >= 0.915
    # 5,000 dev images: a standard error of ~0.4 points around the test figure (split-dependent).
    assert metrics["dev_accuracy"] >= 0.905
