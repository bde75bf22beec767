"""NumPy MLP speed: forward, backward and SGD step per architecture, a whole ``mlp`` epoch, the
original's loop LogSoftmax backward as a baseline, and a float32 GEMM as the ceiling of them all.

FLOPs count matrix products only (2·m·n·k); element-wise work is the overhead the ratio to the
GEMM ceiling exposes. Every ratio is paired (``bench/conftest.py``): each round of the kernel is
followed by its reference, the ceiling with the kernel's BLAS threads or the slower baseline.
Targets: a 784-256-10 step at >= 60% of the ceiling, an ``mlp`` epoch at >= 60%, the vectorised
LogSoftmax backward >= 100x the loop. ``quick``-marked ones form ``--quick``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mnist_suite import seeding, threads
from mnist_suite.data import split_arrays
from mnist_suite.jobs.mlp import MlpConfig, build_recipe
from mnist_suite.nn import SGD, LogSoftmax, NLLLoss, mlp
from mnist_suite.nn.reference import log_softmax_backward_loop

NETS = [((784, 10, 10), 100), ((784, 256, 10), 128), ((784, 512, 256, 10), 128)]
NET_IDS = [f"{'-'.join(map(str, s))}-b{b}" for s, b in NETS]
# The target's net and the original's: the quick subset.
QUICK_NETS = [
    pytest.param(*net, id=name, marks=[pytest.mark.quick] if net[0][1] != 512 else [])
    for net, name in zip(NETS, NET_IDS, strict=True)
]


def forward_flops(sizes: tuple[int, ...], batch: int) -> int:
    return sum(2 * batch * a * b for a, b in itertools.pairwise(sizes))


def backward_flops(sizes: tuple[int, ...], batch: int) -> int:
    """Weight gradients of every layer, input gradients of all but the first (never computed)."""
    pairs = list(itertools.pairwise(sizes))
    return sum(2 * batch * a * b for a, b in pairs) + sum(2 * batch * a * b for a, b in pairs[1:])


def setup_net(sizes: tuple[int, ...], batch: int):
    rng = np.random.default_rng(0)
    net = mlp(sizes, rng=rng)
    loss = NLLLoss()
    opt = SGD(net.params, net.grads, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = rng.random((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch)
    return net, loss, opt, x, y


@pytest.mark.benchmark(group="gemm-ceiling")
@pytest.mark.parametrize(
    ("dtype", "n_threads"),
    [
        pytest.param("float32", 0, id="float32", marks=pytest.mark.quick),
        pytest.param("float32", 1, id="float32-1thread", marks=pytest.mark.quick),
        pytest.param("float64", 0, id="float64"),
    ],
)
def test_gemm_2048(benchmark, quick, dtype, n_threads):
    """The machine's ceiling (float32, every core) and the one-thread ceiling beside it."""
    n = 2048
    n_threads = n_threads or threads.cores()
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)).astype(dtype), rng.random((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    benchmark.extra_info.update(shape=f"{n}x{n}x{n}", dtype=dtype, threads=n_threads)
    if dtype == "float32" and n_threads == threads.cores():
        benchmark.extra_info["role"] = "ceiling"  # the dense layers' float32 GEMMs
    with threads.blas_threads(n_threads, site="bench.gemm"):
        benchmark.pedantic(
            np.matmul, args=(a, b), kwargs={"out": out}, rounds=5 if quick else 7, warmup_rounds=1
        )
    if benchmark.stats is not None:
        benchmark.extra_info["flops"] = 2 * n**3
        benchmark.extra_info["gflop_per_s"] = 2 * n**3 / benchmark.stats.stats.median / 1e9


@pytest.mark.benchmark(group="forward")
@pytest.mark.parametrize(("sizes", "batch"), NETS, ids=NET_IDS)
def test_forward(benchmark, paired, sizes, batch):
    net, _, _, x, _ = setup_net(sizes, batch)
    benchmark.extra_info.update(net="-".join(map(str, sizes)), batch=batch, dtype="float32")
    paired(lambda: net.forward(x), flops=forward_flops(sizes, batch))


@pytest.mark.benchmark(group="backward")
@pytest.mark.parametrize(("sizes", "batch"), NETS, ids=NET_IDS)
def test_backward(benchmark, paired, sizes, batch):
    net, loss, _, x, y = setup_net(sizes, batch)
    loss.forward(net.forward(x), y)
    grad = loss.backward()  # backward only reads the forward's caches: repeatable
    benchmark.extra_info.update(net="-".join(map(str, sizes)), batch=batch, dtype="float32")
    paired(lambda: net.backward(grad), flops=backward_flops(sizes, batch))


class LoopLogSoftmax(LogSoftmax):
    """LogSoftmax with the original's loop backward, for a seed-style training step."""

    def backward(self, grad_out: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return log_softmax_backward_loop(self._out, grad_out)


def step_of(sizes: tuple[int, ...], batch: int, original_loop: bool = False):
    """Forward, NLL, backward and a Nesterov update with weight decay: one training step."""
    net, loss, opt, x, y = setup_net(sizes, batch)
    if original_loop:
        net.layers[-1] = LoopLogSoftmax()

    def step() -> None:
        loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        opt.step(0.01)

    return step


@pytest.mark.benchmark(group="step")
@pytest.mark.parametrize(("sizes", "batch"), QUICK_NETS)
def test_sgd_step(benchmark, paired, quick, sizes, batch):
    """One training step; the original's net also against its loop step, in alternation."""
    benchmark.extra_info.update(net="-".join(map(str, sizes)), batch=batch, dtype="float32")
    references = {}
    if sizes == (784, 256, 10):
        benchmark.extra_info["target"] = {"fraction_of_ceiling": 0.6}
    if sizes == (784, 10, 10):
        references["speedup_over_seed_loop"] = (step_of(sizes, batch, original_loop=True), 1)
    paired(
        step_of(sizes, batch),
        flops=forward_flops(sizes, batch) + backward_flops(sizes, batch),
        references=references,
        rounds=9 if quick else 15,
    )


def plain_step_of(sizes: tuple[int, ...], batch: int):
    """The same step as plain NumPy expressions (temporaries; NumPy's BLAS only): the yardstick
    the library's step must not fall behind at any thread count."""
    rng = np.random.default_rng(0)
    pairs = list(itertools.pairwise(sizes))
    Ws = [rng.standard_normal((a, b)).astype(np.float32) / np.sqrt(a) for a, b in pairs]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    vW, vb = [np.zeros_like(W) for W in Ws], [np.zeros_like(b) for b in bs]
    x = rng.random((batch, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], batch)
    m, wd, lr = 0.9, 5e-4, 0.01

    def step() -> None:
        hs = [x]
        for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
            z = hs[-1] @ W + b  # (B, out)
            hs.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
        z = hs[-1]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)  # softmax, (B, 10)
        p[np.arange(batch), y] -= 1
        g = p / batch  # d mean NLL / d logits
        for i in reversed(range(len(Ws))):
            gW, gb = hs[i].T @ g, g.sum(axis=0)
            if i:
                g = (g @ Ws[i].T) * (hs[i] > 0)
            d = gW + wd * Ws[i]
            vW[i] = m * vW[i] + d
            vb[i] = m * vb[i] + gb
            Ws[i] -= lr * (d + m * vW[i])  # Nesterov, as the library's step
            bs[i] -= lr * (gb + m * vb[i])

    return step


@pytest.mark.quick
@pytest.mark.benchmark(group="step-threads")
@pytest.mark.parametrize("n_threads", [1, 0], ids=["1thread", "allcores"])
def test_step_against_plain_numpy(benchmark, paired, quick, n_threads):
    """The library's 784-256-10/b128 step against plain NumPy, both on 1 BLAS thread and on
    every core: one BLAS runtime on the hot path, so no thread count makes the library slower."""
    sizes, batch = (784, 256, 10), 128
    n_threads = n_threads or threads.cores()
    benchmark.extra_info.update(
        net="-".join(map(str, sizes)),
        batch=batch,
        dtype="float32",
        target={"speedup_over_plain_numpy": 1.0},
    )
    paired(
        step_of(sizes, batch),
        references={"speedup_over_plain_numpy": (plain_step_of(sizes, batch), 1)},
        rounds=9 if quick else 15,
        n_threads=n_threads,
    )


@pytest.fixture
def logsoftmax_batch():
    """The original's shapes: batch 100 × 10 classes, float64."""
    rng = np.random.default_rng(0)
    layer = LogSoftmax()
    logp = layer.forward(rng.standard_normal((100, 10)))
    return layer, logp, rng.standard_normal((100, 10))


@pytest.mark.quick
@pytest.mark.benchmark(group="logsoftmax-backward")
def test_logsoftmax_backward_vectorised(benchmark, paired, quick, logsoftmax_batch):
    """Against the original's Python double loop over batch × classes, in alternation."""
    layer, logp, grad = logsoftmax_batch
    benchmark.extra_info.update(
        batch=100, classes=10, dtype="float64", target={"speedup_over_loop": 100}
    )
    paired(
        lambda: layer.backward(grad),
        references={"speedup_over_loop": (lambda: log_softmax_backward_loop(logp, grad), 1)},
        rounds=9 if quick else 15,
    )


@pytest.mark.quick
@pytest.mark.benchmark(group="epoch")
def test_mlp_epoch(benchmark, paired, quick, mnist):
    """One epoch of the ``mlp`` job's full profile (distortions included) on 55,000 images.

    ``--quick`` trains on the first 11,000 (a fifth of the epoch: same steps, same ratio).
    """
    cfg = MlpConfig()
    # The job's own dev split (seed 0): the epoch trains on the images the job trains on.
    images, labels, _, _ = split_arrays(mnist.x_train, mnist.y_train, cfg.n_dev, 0)
    if quick:
        images, labels = images[:11000], labels[:11000]
    sizes = (784, *cfg.widths, 10)
    # The job's own builder with seed 0's streams: distortions, label smoothing, schedule and
    # all, so a change to the recipe changes what is measured.
    recipe = build_recipe(cfg, len(images), lambda stream: seeding.rng(0, stream))

    def epoch() -> None:
        recipe.epoch(images, labels)

    benchmark.extra_info.update(
        net="-".join(map(str, sizes)),
        batch=cfg.batch_size,
        samples=len(images),
        max_shift=cfg.max_shift,
        distortion=recipe.distort is not None,
        label_smoothing=cfg.label_smoothing,
        dtype=cfg.dtype,
        target={"fraction_of_ceiling": 0.6},
    )
    # FLOPs are linear in the batch size, so the last, smaller batch adds up exactly.
    paired(
        epoch,
        flops=forward_flops(sizes, len(images)) + backward_flops(sizes, len(images)),
        rounds=5,
        calls=1,
    )
