"""Shared benchmark fixtures and the JSON additions every benchmark file relies on.

Benchmarks may put in ``extra_info``:
- ``flops``: work of one call (matmul FLOPs, 2·m·n·k); ``gflop_per_s`` from the median;
- ``role = "ceiling"``: this benchmark's GFLOP/s is the machine's dense-layer ceiling (one per
  run: the float32 GEMM); every benchmark with ``flops`` then gets ``fraction_of_ceiling``;
- ``baseline``: the full name of a slower benchmark; this one gets ``speedup_over_baseline``;
- ``target``: ``{"fraction_of_ceiling": 0.6}`` or ``{"speedup_over_baseline": 100}``; the JSON's
  ``targets`` list says for each whether this run met it.
Ratios are computed within one run, on medians, so a shared, noisy machine affects both sides.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def mnist():
    """The real, checksum-verified MNIST (from the cache once fetched)."""
    from training.data import load_mnist

    return load_mnist()


@pytest.fixture
def record_gflops(benchmark):
    """``record_gflops(flops)`` after timing: ``flops`` and the median's GFLOP/s to extra_info."""

    def record(flops: float) -> None:
        benchmark.extra_info["flops"] = flops
        if benchmark.stats is not None:  # None under --benchmark-disable
            benchmark.extra_info["gflop_per_s"] = flops / benchmark.stats.stats.median / 1e9

    return record


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the thread settings in effect: BLAS and TF speed depend on them."""
    from threadpoolctl import threadpool_info

    from training.envinfo import THREAD_VARS

    machine_info["thread_env"] = {k: os.environ.get(k) for k in THREAD_VARS}
    machine_info["threadpools"] = [
        {k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads")}
        for pool in threadpool_info()
    ]
    machine_info["cpu_count"] = os.cpu_count()


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Add within-run ratios (fraction of the GEMM ceiling, speed-ups) and the targets' verdicts."""
    rows = output_json["benchmarks"]
    by_name = {row["fullname"]: row for row in rows}
    ceiling = next((r for r in rows if r["extra_info"].get("role") == "ceiling"), None)
    ceiling_gflops = ceiling["extra_info"].get("gflop_per_s") if ceiling else None
    targets = []
    for row in rows:
        info = row["extra_info"]
        if ceiling_gflops and info.get("gflop_per_s"):
            info["fraction_of_ceiling"] = info["gflop_per_s"] / ceiling_gflops
        baseline = by_name.get(info.get("baseline", ""))
        if baseline is not None:
            info["speedup_over_baseline"] = baseline["stats"]["median"] / row["stats"]["median"]
        for metric, goal in info.get("target", {}).items():
            value = info.get(metric)
            targets.append(
                {
                    "benchmark": row["fullname"],
                    "metric": metric,
                    "value": value,
                    "target": goal,
                    "met": value is not None and value >= goal,
                }
            )
    output_json["targets"] = targets
