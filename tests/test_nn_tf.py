"""Our gradients against TensorFlow's ``GradientTape`` on identical weights and batch."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_suite.nn import NLLLoss, mlp

tf = pytest.importorskip(
    "tensorflow", reason="TensorFlow is not installed: GradientTape comparison skipped"
)


@pytest.mark.parametrize(
    ("sizes", "reduction"), [((784, 10, 10), "sum"), ((784, 64, 32, 10), "mean")]
)
def test_gradients_match_gradient_tape(sizes, reduction):
    rng = np.random.default_rng(5)
    net = mlp(sizes, init="uniform" if reduction == "sum" else "he", rng=rng, dtype=np.float64)
    loss_fn = NLLLoss(reduction)
    x = rng.random((32, 784))
    y = rng.integers(0, 10, 32)
    ours_loss = loss_fn.forward(net.forward(x), y)
    net.backward(loss_fn.backward())

    weights = [tf.Variable(p) for p in net.params]  # W (out, in), b (out,) pairs
    with tf.GradientTape() as tape:
        h = tf.constant(x)
        for i in range(0, len(weights), 2):
            h = tf.matmul(h, weights[i], transpose_b=True) + weights[i + 1]
            if i + 2 < len(weights):
                h = tf.nn.relu(h)
        picked = tf.gather(tf.nn.log_softmax(h), y, batch_dims=1)
        loss = -tf.reduce_sum(picked) if reduction == "sum" else -tf.reduce_mean(picked)
    theirs = tape.gradient(loss, weights)

    assert ours_loss == pytest.approx(float(loss), rel=1e-12)
    for ours, g in zip(net.grads, theirs, strict=True):
        np.testing.assert_allclose(ours, g.numpy(), rtol=1e-6, atol=1e-6)
