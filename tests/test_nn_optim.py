"""SGD updates against hand-written formulas; schedules; initialiser statistics; bad values."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_suite.errors import ParameterError
from mnist_suite.nn import SGD, Linear, get_initialiser, make_schedule


def run_sgd(steps: int, **options) -> tuple[np.ndarray, np.ndarray]:
    """Three SGD steps on W (2, 3) and b (2,) with fixed gradients; returns the new W and b."""
    W, b = np.ones((2, 3)), np.ones(2)
    gW, gb = np.full((2, 3), 0.5), np.full(2, 0.5)
    opt = SGD([W, b], [gW, gb], **options)
    for _ in range(steps):
        opt.step(0.1)
    return W, b


def reference(steps: int, momentum: float, nesterov: bool, wd: float, decay: bool) -> float:
    """The same update for one scalar entry, written out."""
    w, v = 1.0, 0.0
    for _ in range(steps):
        g = 0.5 + (wd * w if decay else 0.0)
        v = momentum * v + g
        w -= 0.1 * (g + momentum * v if nesterov else v)
    return w


@pytest.mark.parametrize(
    ("momentum", "nesterov", "wd"), [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-2)]
)
def test_sgd_matches_the_written_out_update(momentum, nesterov, wd):
    W, b = run_sgd(3, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    np.testing.assert_allclose(W, reference(3, momentum, nesterov, wd, decay=True), rtol=1e-14)
    # Biases are never decayed.
    np.testing.assert_allclose(b, reference(3, momentum, nesterov, wd, decay=False), rtol=1e-14)


def test_sgd_leaves_the_gradient_buffers_alone():
    W, g = np.ones((2, 2)), np.full((2, 2), 0.5)
    SGD([W], [g], momentum=0.9, weight_decay=0.1).step(0.1)
    np.testing.assert_array_equal(g, 0.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"momentum": 1.0}, "momentum=1.0 must be in"),
        ({"nesterov": True}, "nesterov=true needs momentum > 0"),
        ({"weight_decay": -1.0}, "weight_decay=-1.0 must be >= 0"),
    ],
)
def test_sgd_rejects_bad_options(options, message):
    with pytest.raises(ParameterError, match=message):
        SGD([np.ones(2)], [np.ones(2)], **options)


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")])
def test_sgd_rejects_non_positive_lr(lr):
    with pytest.raises(ParameterError, match="must be > 0"):
        SGD([np.ones(2)], [np.ones(2)]).step(lr)


def test_cosine_with_warmup():
    rate = make_schedule("cosine", 1.0, 110, warmup_steps=10)
    lrs = np.array([rate(s) for s in range(110)])
    np.testing.assert_allclose(lrs[:10], np.arange(1, 11) / 10)
    assert lrs[10] == 1.0 and lrs[60] == pytest.approx(0.5)
    assert np.all(np.diff(lrs[10:]) < 0) and 0 < lrs[-1] < 1e-3


def test_step_and_constant():
    rate = make_schedule("step", 0.5, 30, step_every=10, gamma=0.1)
    assert [rate(s) for s in (0, 9, 10, 29)] == pytest.approx([0.5, 0.5, 0.05, 0.005])
    assert {make_schedule("constant", 0.3, 5)(s) for s in range(5)} == {0.3}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("linear", 0.1, 10), {}, "unknown schedule 'linear' .*constant, step, cosine"),
        (("cosine", 0.0, 10), {}, "lr=0.0 must be > 0"),
        (("cosine", 0.1, 0), {}, "total_steps=0 must be > 0"),
        (("cosine", 0.1, 10), {"warmup_steps": 10}, "warmup_steps=10 must be in"),
        (("step", 0.1, 10), {"gamma": 2.0}, "gamma=2.0"),
    ],
)
def test_schedule_errors(args, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        make_schedule(*args, **kwargs)


def test_unknown_initialiser_is_a_config_error():
    with pytest.raises(ParameterError, match=r"unknown initialiser 'xavier' .*uniform, he, glorot"):
        Linear(3, 2, init="xavier")


def test_initialiser_statistics():
    rng = np.random.default_rng(0)
    W, b = get_initialiser("uniform")(rng, 784, 500, np.dtype(np.float64))
    assert W.shape == (500, 784) and W.min() >= -0.5 and W.max() < 0.5 and b.min() < -0.4
    assert W.std() == pytest.approx(np.sqrt(1 / 12), rel=0.01)
    W, b = get_initialiser("he")(rng, 784, 500, np.dtype(np.float32))
    assert W.dtype == np.float32 and W.std() == pytest.approx(np.sqrt(2 / 784), rel=0.01)
    assert not b.any()
    W, _ = get_initialiser("glorot")(rng, 784, 500, np.dtype(np.float64))
    limit = np.sqrt(6 / 1284)
    assert np.abs(W).max() <= limit and W.std() == pytest.approx(limit / np.sqrt(3), rel=0.01)


def test_chunked_threaded_update_equals_the_plain_formula():
    """A matrix of four chunks, updated by 1 or 3 threads, against NumPy in one pass.

    The fused BLAS update rounds differently from the written-out formula (float32: a few ulp
    after three steps, absolute near zero); any thread count gives the same bits.
    """
    rng = np.random.default_rng(0)
    W0 = rng.standard_normal((3, SGD.CHUNK + 50)).astype(np.float32)  # 3 chunks and a bit
    g = rng.standard_normal(W0.shape).astype(np.float32)
    m, wd, lr = np.float32(0.9), np.float32(5e-4), np.float32(0.05)
    w, v = W0.copy(), np.zeros_like(W0)
    for _ in range(3):
        d = g + wd * w
        v = m * v + d
        w = w - lr * (d + m * v)
    for threads in (1, 3):
        W = W0.copy()
        opt = SGD([W], [g], momentum=0.9, nesterov=True, weight_decay=5e-4, threads=threads)
        assert len(opt._groups) == threads
        for _ in range(3):
            opt.step(0.05)
        np.testing.assert_allclose(W, w, rtol=1e-6, atol=1e-6)
        if threads == 1:
            single = W.tobytes()
        else:
            assert W.tobytes() == single
