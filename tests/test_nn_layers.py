"""Every layer's backward against central finite differences (float64), and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_suite.nn import Dropout, Linear, LogSoftmax, NLLLoss, ReLU, Sequential, mlp
from mnist_suite.nn.reference import log_softmax_backward_loop

EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-8  # central differences in float64 are accurate to ~1e-9 here


def numeric_grad(f, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``x`` (perturbed in place)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + EPS
        up = f()
        x[i] = old - EPS
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * EPS)
    return grad


def check_layer(layer, x: np.ndarray, rng: np.random.Generator) -> None:
    """Compare ``layer.backward`` with finite differences of ``sum(forward(x) * r)``."""
    r = rng.standard_normal(layer.forward(x).shape)  # a random upstream gradient

    def f() -> float:
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x)
    grad_x = layer.backward(r, input_grad=True)
    analytic = [grad_x, *(g.copy() for g in layer.grads)]
    numeric = [numeric_grad(f, x), *(numeric_grad(f, p) for p in layer.params)]
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a, n, rtol=RTOL, atol=ATOL)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.mark.parametrize("init", ["he", "glorot", "uniform"])
def test_linear_gradients(rng, init):
    layer = Linear(7, 5, init=init, rng=rng, dtype=np.float64)
    check_layer(layer, rng.standard_normal((4, 7)), rng)


def test_relu_gradient_away_from_the_kink(rng):
    x = rng.standard_normal((6, 9))
    x[np.abs(x) < 1e-3] = 0.5  # the derivative at 0 is undefined; keep differences off it
    check_layer(ReLU(), x, rng)


def test_logsoftmax_gradient_and_rows_normalised(rng):
    x = rng.standard_normal((5, 10)) * 3
    check_layer(LogSoftmax(), x, rng)
    np.testing.assert_allclose(np.exp(LogSoftmax().forward(x)).sum(axis=1), 1.0, rtol=1e-12)


def test_logsoftmax_is_stable_for_huge_scores():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]])
    out = LogSoftmax().forward(x)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[0], [0.0, -1000.0, -2000.0])
    np.testing.assert_allclose(out[1], np.log(1 / 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_logsoftmax_backward_equals_the_loop(rng, dtype):
    layer = LogSoftmax()
    logp = layer.forward(rng.standard_normal((37, 10)).astype(dtype) * 4)
    grad_out = rng.standard_normal((37, 10)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(
        layer.backward(grad_out), log_softmax_backward_loop(logp, grad_out), rtol=tol, atol=tol
    )


def test_dropout_gradient_with_a_fixed_mask(rng):
    layer = Dropout(0.3)
    x = rng.standard_normal((8, 6))

    def reseed(*_):
        layer.rng = np.random.default_rng(7)  # the same mask on every forward

    r = rng.standard_normal(x.shape)
    reseed()
    layer.forward(x)
    analytic = layer.backward(r)

    def f() -> float:
        reseed()
        return float(np.sum(layer.forward(x) * r))

    np.testing.assert_allclose(analytic, numeric_grad(f, x), rtol=RTOL, atol=ATOL)
    assert 0 < np.count_nonzero(analytic == 0) < x.size  # some dropped, some kept


def test_dropout_is_identity_in_eval_and_unbiased_in_training(rng):
    x = np.ones((2000, 50))
    layer = Dropout(0.25, rng)
    assert layer.forward(x).mean() == pytest.approx(1.0, abs=0.01)
    layer.training = False
    assert layer.forward(x) is x


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nll_gradient(rng, reduction):
    loss = NLLLoss(reduction)
    logp = LogSoftmax().forward(rng.standard_normal((6, 10)))
    y = rng.integers(0, 10, 6)
    loss.forward(logp, y)
    analytic = loss.backward()
    np.testing.assert_allclose(
        analytic, numeric_grad(lambda: loss.forward(logp, y), logp), rtol=RTOL, atol=ATOL
    )
    scale = 1 / 6 if reduction == "mean" else 1
    assert loss.forward(logp, y) == pytest.approx(-logp[np.arange(6), y].sum() * scale)


def test_whole_network_gradients(rng):
    """Every parameter of a 3-layer net with dropout, through LogSoftmax and NLL, in float64."""
    net = mlp((12, 9, 7, 10), init="he", rng=rng, dtype=np.float64, dropout=0.2)
    loss = NLLLoss("mean")
    x, y = rng.standard_normal((5, 12)), rng.integers(0, 10, 5)
    dropouts = [layer for layer in net.layers if isinstance(layer, Dropout)]

    def f() -> float:
        for i, d in enumerate(dropouts):
            d.rng = np.random.default_rng(i)
        return loss.forward(net.forward(x), y)

    f()
    grad_x = net.backward(loss.backward(), input_grad=True)
    analytic = [g.copy() for g in net.grads]
    np.testing.assert_allclose(grad_x, numeric_grad(f, x), rtol=RTOL, atol=ATOL)
    assert len(net.params) == 6
    for p, a in zip(net.params, analytic, strict=True):
        np.testing.assert_allclose(a, numeric_grad(f, p), rtol=RTOL, atol=ATOL)


def test_first_layer_input_gradient_is_skipped_by_default(rng):
    net = mlp((8, 4, 10), rng=rng, dtype=np.float64)
    loss = NLLLoss()
    loss.forward(net.forward(rng.standard_normal((3, 8))), np.array([1, 2, 3]))
    assert net.backward(loss.backward()) is None
    assert np.any(net.grads[0] != 0)


def test_float32_by_default_float64_on_request(rng):
    assert mlp((8, 4, 10)).forward(np.zeros((2, 8), np.float32)).dtype == np.float32
    net = mlp((8, 4, 10), dtype=np.float64)
    assert all(p.dtype == np.float64 for p in net.params)


LINEAR = r"Linear\(784→10\): "


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((3, 783), np.float32), r"input shape \(3, 783\), expected \(B, 784\)"),
        (np.zeros((784,), np.float32), r"input shape \(784,\), expected \(B, 784\)"),
        (
            np.zeros((3, 784), np.float64),
            r"input dtype float64 \(shape \(3, 784\)\), expected float32 \(B, 784\)",
        ),
        (np.zeros((3, 784), np.uint8), r"input dtype uint8"),
    ],
)
def test_linear_rejects_wrong_shape_or_dtype(x, message):
    with pytest.raises(ValueError, match=LINEAR + message):
        Linear(784, 10).forward(x)


def test_other_layers_name_themselves_in_shape_errors():
    with pytest.raises(ValueError, match=r"ReLU\(\): input shape \(2, 3, 4\), expected \(B, C\)"):
        ReLU().forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"LogSoftmax\(\): input dtype int64"):
        LogSoftmax().forward(np.zeros((2, 3), np.int64))
    loss = NLLLoss()
    with pytest.raises(
        ValueError, match=r"NLLLoss\(reduction='mean'\): target shape \(3,\), expected \(2,\)"
    ):
        loss.forward(np.zeros((2, 10)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="target dtype float64, expected integer"):
        loss.forward(np.zeros((2, 10)), np.zeros(2))
    with pytest.raises(ValueError, match=r"Linear\(784→10\)"):
        Sequential(Linear(784, 10), LogSoftmax()).forward(np.zeros((1, 28, 28), np.float32))


def test_predict_log_proba_batches_match_one_pass(rng):
    net = mlp((20, 16, 10), rng=rng, dtype=np.float64, dropout=0.5)
    x = rng.standard_normal((103, 20))
    net.train(False)
    full = net.forward(x)
    net.train(True)
    np.testing.assert_allclose(net.predict_log_proba(x, batch_size=10), full, rtol=1e-12)
    assert net.training  # restored
    assert net.predict_log_proba(x[:0]).shape == (0, 10)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_label_smoothing_gradient_and_value(rng, reduction):
    loss = NLLLoss(reduction, smoothing=0.1)
    logp = LogSoftmax().forward(rng.standard_normal((6, 10)))
    y = rng.integers(0, 10, 6)
    value = loss.forward(logp, y)
    np.testing.assert_allclose(
        loss.backward(), numeric_grad(lambda: loss.forward(logp, y), logp), rtol=RTOL, atol=ATOL
    )
    target = np.full((6, 10), 0.01)
    target[np.arange(6), y] += 0.9
    scale = 1 / 6 if reduction == "mean" else 1
    assert value == pytest.approx(-(target * logp).sum() * scale)


def test_label_smoothing_out_of_range_is_rejected():
    with pytest.raises(ValueError, match=r"smoothing=1\.0"):
        NLLLoss(smoothing=1.0)
