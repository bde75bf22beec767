"""The TF SGD loop: the original model, updates checked against each other, divergence handling."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from mnist_suite.data import to_unit
from mnist_suite.errors import ParameterError
from mnist_suite.jobs.sgd import GridConfig, SgdConfig, SweepConfig, grid_cells, sweep_cells
from mnist_suite.tfsgd import parse_net


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": 0.0}, "lr=0.0 must be"),
        ({"lr": -0.1}, "lr=-0.1 must be"),
        ({"lr": float("nan")}, "lr=nan must be"),
        ({"batch_size": 0}, "batch_size=0 must be > 0"),
        ({"reduction": "median"}, "reduction='median' is unknown"),
        ({"update": "adam"}, "update='adam' is unknown"),
        ({"widths": ()}, "widths=() must be"),
        ({"momentum": 0.9, "update": "set_weights"}, "momentum=0 only"),
    ],
)
def test_bad_config_is_rejected(overrides, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        SgdConfig(**overrides)


def test_bad_axes_are_rejected_before_any_cell_runs():
    with pytest.raises(ParameterError, match="empty grid"):
        GridConfig(lrs=())
    with pytest.raises(ParameterError, match="net '32-x'"):
        GridConfig(nets=("32-x",))
    with pytest.raises(ParameterError, match="batch_size=-1"):
        GridConfig(batch_sizes=(32, -1))
    with pytest.raises(ParameterError, match="lrs is empty"):
        SweepConfig(lrs=())
    with pytest.raises(ParameterError, match=r"lr=0\.0"):
        SweepConfig(lrs=(0.1, 0.0))


def test_grid_and_sweep_cells():
    grid = GridConfig()
    cells = grid_cells(grid)
    assert len(cells) == len(grid.lrs) * len(grid.batch_sizes) * len(grid.nets)
    assert len({label for label, _ in cells}) == len(cells)
    assert {c.widths for _, c in cells} >= {(32, 32)}  # the original's net is an axis value
    assert {c.reduction for _, c in cells} == {"mean"}
    assert [c.lr for _, c in sweep_cells(SweepConfig())] == [0.1, 0.01, 0.001]
    assert parse_net("512-256") == (512, 256)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "sgd-original", "--set", "lr=0"],
        ["run", "sgd-grid", "--set", "lrs="],
        ["run", "sgd-lr-sweep", "--set", "reduction=max"],
        ["run", "sgd-grid", "--set", "batch_sizes=0"],
    ],
)
def test_cli_rejects_bad_input_before_training(run_cli, tmp_path, argv):
    code, _, err = run_cli(*argv)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_listing_jobs_does_not_import_tensorflow():
    code = (
        "import sys; from mnist_suite.cli import main; main(['list']); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "sgd-grid" in result.stdout


@pytest.fixture(scope="module")
def loop():
    from mnist_suite.tfsgd import loop

    loop.configure(0)
    return loop


@pytest.fixture(scope="module")
def small(mnist, loop):
    """512 real training images as tensors: (512, 784) float32, (512,) int32."""
    return loop.to_tensors(to_unit(mnist.x_train[:512]), mnist.y_train[:512])


def _weights(model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


def test_seed_model_shape_and_init(loop):
    model = loop.build_model((32, 32))
    assert loop.count_params(model) == 26_506  # the original's figure
    for layer in model.layers[1:]:
        kernel, bias = layer.get_weights()
        limit = np.sqrt(6 / sum(kernel.shape))  # Glorot-uniform bound
        assert np.abs(kernel).max() <= limit
        assert np.abs(kernel).max() > 0.9 * limit
        assert not bias.any()
    probs = model(np.random.default_rng(0).random((4, 784), dtype=np.float32)).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_assign_sub_step_matches_seed_set_weights_step(loop, small):
    x, y = small
    a = loop.build_model((32, 32))
    b = loop.build_model((32, 32))
    b.set_weights(a.get_weights())
    fast = loop.SGDTrainer(a, 0.01, 32, "sum")
    seed = loop.SGDTrainer(b, 0.01, 32, "sum", update="set_weights")
    for start in (0, 32, 64):
        loss_fast = float(fast.train_step(x[start : start + 32], y[start : start + 32]))
        loss_seed = float(seed.original_step(x[start : start + 32], y[start : start + 32]))
        assert loss_fast == pytest.approx(loss_seed, rel=1e-5)
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_sum_reduction_is_mean_reduction_with_lr_times_batch(loop, small):
    x, y = small
    a = loop.build_model((16,))
    b = loop.build_model((16,))
    b.set_weights(a.get_weights())
    before = _weights(a)
    loop.SGDTrainer(a, 0.01, 64, "sum").train_step(x[:64], y[:64])
    loop.SGDTrainer(b, 0.01 * 64, 64, "mean").train_step(x[:64], y[:64])
    for w0, wa, wb in zip(before, _weights(a), _weights(b), strict=True):
        assert not np.allclose(w0, wa)
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_in_graph_epoch_matches_python_loop_of_steps(loop, small, momentum):
    x, y = small
    a = loop.build_model((32, 32))
    b = loop.build_model((32, 32))
    b.set_weights(a.get_weights())
    order = np.random.default_rng(1).permutation(500)  # 500 rows: the last batch has 20
    graph = loop.SGDTrainer(a, 0.05, 48, "mean", momentum=momentum)
    steps = loop.SGDTrainer(b, 0.05, 48, "mean", momentum=momentum)
    losses = graph.train_epoch(x, y, order)
    expected = []
    for start in range(0, 500, 48):
        idx = order[start : start + 48]
        expected.append(float(steps.train_step(x.numpy()[idx], y.numpy()[idx])))
    assert len(losses) == 11
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)


def test_epoch_stops_at_first_non_finite_loss(loop, small):
    x, y = small
    trainer = loop.SGDTrainer(loop.build_model((32, 32)), 1e8, 32, "sum")
    losses = trainer.train_epoch(x, y, np.arange(512))
    assert not np.isfinite(losses[-1])
    assert np.isfinite(losses[:-1]).all()
    assert len(losses) < 16


def test_training_lowers_loss_and_evaluate_agrees_with_numpy(loop, small):
    x, y = small
    model = loop.build_model((32, 32))
    trainer = loop.SGDTrainer(model, 0.01, 32, "sum")
    before, _ = trainer.evaluate(x, y)
    for _ in range(3):
        trainer.train_epoch(x, y, np.random.default_rng(0).permutation(512))
    loss, acc = trainer.evaluate(x, y)
    probs = model(x).numpy()
    p_true = np.clip(probs[np.arange(512), y.numpy()], 1e-7, 1 - 1e-7)
    assert loss == pytest.approx(float(-np.log(p_true).mean()), rel=1e-4)
    assert acc == pytest.approx(float((probs.argmax(axis=1) == y.numpy()).mean()))
    assert loss < 0.5 * before


def _fit(loop, small, seed: int, widths, lr: float, momentum: float = 0.0):
    """A run's use of a trainer: seeded, an epoch of 10 batches of 48, then an evaluation."""
    x, y = small
    loop.configure(seed)
    trainer = loop.trainer(widths, lr, 48, "mean", momentum)
    losses = trainer.train_epoch(x, y, np.random.default_rng(seed).permutation(480))
    return trainer, losses, trainer.evaluate(x, y), _weights(trainer.model)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_cached_trainer_restarts_exactly_as_a_new_one_would_start(loop, small, momentum):
    """Same shape, other seed and learning rate: the cached trainer's graphs, a new trainer's
    figures, bit for bit (weights, velocity, learning rate and momentum all start over)."""
    loop.clear_trainers()
    first, *_ = _fit(loop, small, 3, (16,), 0.05, momentum)
    traced = first.tracing_count
    cached, *figures = _fit(loop, small, 4, (16,), 0.2, momentum / 2)
    assert cached is first and cached.tracing_count == traced == 2  # an epoch and an evaluation
    loop.clear_trainers()
    fresh, *expected = _fit(loop, small, 4, (16,), 0.2, momentum / 2)
    assert fresh is not cached and fresh.tracing_count == 2
    np.testing.assert_array_equal(figures[0], expected[0])  # every batch loss
    assert figures[1] == expected[1]  # loss and accuracy
    for got, want in zip(figures[2], expected[2], strict=True):
        np.testing.assert_array_equal(got, want)


def test_cells_of_one_shape_trace_once_and_other_shapes_apart(loop, small):
    loop.clear_trainers()
    trainers = [_fit(loop, small, seed, (8,), lr)[0] for seed, lr in enumerate((0.3, 0.1, 0.03))]
    assert all(t is trainers[0] for t in trainers) and trainers[0].tracing_count == 2
    wider = loop.trainer((12,), 0.1, 48, "mean")
    heavy = loop.trainer((8,), 0.1, 48, "mean", momentum=0.9)  # a velocity update: another graph
    other_batch = loop.trainer((8,), 0.1, 64, "mean")
    assert len({id(t) for t in (trainers[0], wider, heavy, other_batch)}) == 4
    assert loop.trainer((8,), 0.1, 48, "mean") is trainers[0]
    for width in range(100, 100 + loop.CACHED_SHAPES):  # the cache keeps the latest shapes
        loop.trainer((width,), 0.1, 48, "mean")
    assert loop.trainer((8,), 0.1, 48, "mean") is not trainers[0]
