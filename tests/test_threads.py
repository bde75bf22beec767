"""The BLAS thread policy: its rule, that it restores what it changed, and why the choice for
training steps must not follow the load (1 and 2 threads round differently)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from mnist_suite import threads


def blas_threads_now() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a 2-core machine with a given 1-minute load average."""

    def set_load(load: float) -> None:
        monkeypatch.setattr(threads, "cores", lambda: 2)
        monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))

    return set_load


@pytest.mark.parametrize(
    ("load", "flops", "expected"),
    [
        (0.2, None, 1),  # a training step of this suite: small products, one thread
        (0.2, 1e8, 1),
        (0.2, 2e9, 2),  # a large GEMM on a quiet machine: every core
        (1.4, 2e9, 2),
        (1.5, 2e9, 1),  # another process is runnable: one thread
        (6.0, 2e9, 1),
    ],
)
def test_policy_rule(machine, load, flops, expected):
    machine(load)
    assert threads.policy(flops) == expected


def test_blas_threads_sets_and_restores_and_records(machine):
    machine(0.0)
    before = blas_threads_now()

    @threads.blas_threads(flops=2e9)
    def big() -> list[int]:
        return blas_threads_now()

    with threads.blas_threads(1, site="test.block") as n:
        assert n == 1 and set(blas_threads_now()) == {1}
    assert blas_threads_now() == before
    assert set(big()) == {2} and blas_threads_now() == before
    assert threads.CHOSEN["test.block"] == 1
    assert threads.CHOSEN[f"{__name__}.{big.__qualname__}"] == 2
    described = threads.describe()
    assert described["chosen"]["test.block"] == 1 and described["small_flops"] > 0


@pytest.mark.parametrize(
    ("a", "b"),
    [((128, 784), (784, 256)), ((256, 128), (128, 784)), ((128, 512), (512, 256))],
    ids=["forward", "weight-gradient", "hidden"],
)
def test_thread_count_only_changes_rounding(machine, a, b):
    """Equal to float32 rounding, not bit for bit: so a step's choice ignores the load."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(a, dtype=np.float32), rng.standard_normal(b, dtype=np.float32)
    with threads.blas_threads(1):
        one = x @ w
    with threads.blas_threads(2):
        two = x @ w
    np.testing.assert_allclose(one, two, rtol=0, atol=1e-5 * np.abs(one).max())
    choices = set()
    for load in (0.0, 1.0, 8.0):
        machine(load)
        choices.add(threads.policy())
    assert choices == {1}
