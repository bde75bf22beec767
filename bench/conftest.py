"""Shared benchmark fixtures, paired ratios, quick mode and the JSON additions of every run.

Ratios are measured **in alternation**: the ``paired`` fixture times rounds of a kernel, each
followed at once by its references (the float32 GEMM ceiling with the kernel's BLAS threads,
the original's loop, Keras ``fit``, ...), so both sides of every ratio see the same load. A ratio is
the median over rounds with its quartiles; ``extra_info`` then has, per metric
(``fraction_of_ceiling``, ``speedup_over_*``):

- ``<metric>``: the median ratio over rounds;
- ``ratios[<metric>]``: ``median``, ``q1``, ``q3``, ``rounds``, the per-round ``values`` and the
  per-round seconds of ``kernel_s`` and ``reference_s``;
- ``target``: ``{"fraction_of_ceiling": 0.6}``; the JSON's ``targets`` list gives the verdict:
  ``met`` when the lower quartile reaches the target, ``missed`` when the upper quartile is below
  it, ``unstable`` when the quartiles straddle it;
- ``ratio_definition`` (top level, and ``definition`` in every ratio): the version of what a
  ratio means (:data:`mnist_suite.benchcompare.DEFINITIONS`); change it with the definition;
- ``unstable: true`` when a verdict is unstable or a ratio's IQR exceeds UNSTABLE_SPREAD of its
  median (too noisy to compare with other runs).

The run's noise goes in the top-level ``noise``: load average before and after, and the
coefficient of variation of every ceiling measurement of the run (per thread count).
``--quick`` runs the ``quick``-marked subset with fewer rounds (no TensorFlow import).
``MNIST_SUITE_BENCH_SLOWDOWN=copy:N`` makes every SGD step copy its parameters N more times: a
deliberate regression, for testing ``bench_compare``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from mnist_suite import benchcompare, threads, verdicts

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LOAD_BEFORE = list(os.getloadavg())
CEILING_N = 1024  # 2·1024³ FLOPs: ≈ 15–30 ms, short enough to pair with every round
CEILING_GFLOPS: dict[int, list[float]] = defaultdict(list)  # threads -> every ceiling round
BLOCK_S = 0.02  # a round of a fast kernel: repeat it for about this long
# A ratio whose interquartile range exceeds this share of its median is too noisy to compare
# with other runs, whatever its verdict: the benchmark is marked unstable.
UNSTABLE_SPREAD = benchcompare.UNSTABLE_SPREAD


def pytest_addoption(parser):
    parser.addoption(
        "--quick", action="store_true", help="the quick subset, fewer rounds (<= 60 s on 2 cores)"
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: part of the quick benchmark subset (--quick)")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--quick"):
        return
    keep = [item for item in items if item.get_closest_marker("quick")]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


@pytest.fixture(scope="session")
def quick(request) -> bool:
    return bool(request.config.getoption("--quick"))


@pytest.fixture(scope="session")
def mnist():
    """The real, checksum-verified MNIST (from the cache once fetched)."""
    from mnist_suite.data import load_mnist

    return load_mnist()


@pytest.fixture(scope="session", autouse=True)
def _injected_slowdown():
    """A deliberate regression on request: every SGD step copies its parameters N more times."""
    kind, _, times = os.environ.get("MNIST_SUITE_BENCH_SLOWDOWN", "").partition(":")
    if kind != "copy":
        yield
        return
    from mnist_suite.nn import SGD

    step = SGD.step

    def slower(self, lr):
        step(self, lr)
        for _ in range(int(times or 1)):
            for p in self.params:
                p.copy()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SGD, "step", slower)
        yield


def ceiling_gemm(n_threads: int) -> Callable[[], None]:
    """The dense-layer ceiling: a float32 CEILING_N³ GEMM with ``n_threads`` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.random((CEILING_N, CEILING_N), dtype=np.float32)
    b = rng.random((CEILING_N, CEILING_N), dtype=np.float32)
    out = np.empty_like(a)

    def gemm() -> None:
        with threads.blas_threads(n_threads, site="bench.ceiling"):
            np.matmul(a, b, out=out)

    return gemm


CEILING_FLOPS = 2 * CEILING_N**3


def _timed(fn: Callable[[], object], calls: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


def _fastest(fn: Callable[[], object], tries: int = 2) -> float:
    """The fastest of a few calls (one if a call takes over 0.2 s): near the CPU cost."""
    best = _timed(fn)
    for _ in range(tries - 1 if best < 0.2 else 0):
        best = min(best, _timed(fn))
    return best


def summary(values: list[float]) -> dict:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "rounds": len(values)}


@pytest.fixture
def paired(benchmark):
    """``paired(kernel, flops=..., references=..., rounds=...)``: time a kernel in alternation.

    Parameters (of the returned function)
    ----------
    kernel : callable
        No arguments; repeated within a round (``calls``) to last as long as its longest
        reference and at least BLOCK_S; shorter references are repeated to match it.
    flops : float, optional
        Matrix-product FLOPs of one kernel call: pairs it with the GEMM ceiling run with the
        same BLAS threads (``fraction_of_ceiling``), and records ``gflop_per_s``.
    references : dict, optional
        ``{"speedup_over_x": (reference, units)}``: a callable run after every kernel round,
        and the work units (steps) one call of it does; ``units`` is the kernel's.
    n_threads : int, optional
        BLAS threads for kernel and ceiling; the policy's for a training step by default.
    """

    def run(
        kernel: Callable[[], object],
        *,
        flops: float | None = None,
        references: dict[str, tuple[Callable[[], object], float]] | None = None,
        units: float = 1,
        rounds: int = 15,
        n_threads: int | None = None,
        calls: int | None = None,
    ) -> None:
        n_threads = threads.policy() if n_threads is None else n_threads
        refs = dict(references or {})
        if flops:
            refs["fraction_of_ceiling"] = (ceiling_gemm(n_threads), 1)
        ref_s: dict[str, list[float]] = {metric: [] for metric in refs}
        with threads.blas_threads(n_threads, site="bench.kernel"):
            # Both sides of a round last about as long: on a busy machine a block shorter than
            # the scheduler's time slice can run uninterrupted while a long one gets only its
            # fair share, which would bias every ratio. Fastest calls estimate the CPU cost.
            t_kernel = _fastest(kernel, 1 if calls else 3)
            t_ref = {metric: _fastest(ref) for metric, (ref, _) in refs.items()}
            if calls is None:
                block = max([BLOCK_S, *t_ref.values()])
                calls = max(1, round(block / max(t_kernel, 1e-7)))
            ref_calls = {m: max(1, round(calls * t_kernel / t)) for m, t in t_ref.items()}

            def after_round(*args, **kwargs) -> None:
                for metric, (ref, _) in refs.items():
                    ref_s[metric].append(_timed(ref, ref_calls[metric]) / ref_calls[metric])

            benchmark.pedantic(
                kernel, rounds=rounds, iterations=calls, warmup_rounds=1, teardown=after_round
            )
        benchmark.extra_info.update(
            threads=n_threads, calls_per_round=calls, reference_calls_per_round=ref_calls
        )
        if benchmark.stats is None:  # --benchmark-disable
            return
        kernel_s = list(benchmark.stats.stats.data)  # seconds per call, one per round
        if flops:
            benchmark.extra_info["flops"] = flops
            benchmark.extra_info["gflop_per_s"] = flops / benchmark.stats.stats.median / 1e9
        ratios = {}
        for metric, (_, ref_units) in refs.items():
            # Round i's reference ran right after kernel round i; the first one followed the
            # warm-up round and the last the harness's extra call for the result.
            ref = ref_s[metric][1 : 1 + len(kernel_s)]
            pairs = list(zip(kernel_s, ref, strict=True))
            if metric == "fraction_of_ceiling":
                CEILING_GFLOPS[n_threads] += [CEILING_FLOPS / t / 1e9 for t in ref]
                values = [(flops / k) / (CEILING_FLOPS / c) for k, c in pairs]
            else:
                values = [(r / ref_units) / (k / units) for k, r in pairs]
            ratios[metric] = summary(values) | {
                "definition": benchcompare.DEFINITION,
                "values": values,
                "kernel_s": kernel_s,
                "reference_s": ref,
            }
            benchmark.extra_info[metric] = ratios[metric]["median"]
        benchmark.extra_info["ratios"] = ratios

    return run


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record the thread settings and BLAS policy in effect (BLAS and TF speed depend on them)
    and the machine identity."""
    from threadpoolctl import threadpool_info

    from mnist_suite import envinfo

    machine_info["thread_env"] = {k: os.environ.get(k) for k in envinfo.THREAD_VARS}
    machine_info["threadpools"] = [
        {k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads")}
        for pool in threadpool_info()
    ]
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["blas_policy"] = threads.describe()
    # Where the figures were measured: the host, or which image (the jobs record the same).
    here = envinfo.machine_info()
    machine_info["where"] = {k: here[k] for k in ("in_container", "image", "image_id")}
    # Which runs compare (mnist_suite.benchcompare): the same machine kind, not the same brand.
    machine_info["identity"] = here["identity"]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Add the run's noise, missing ratios (older single-median style) and targets' verdicts."""
    rows = output_json["benchmarks"]
    by_name = {row["fullname"]: row for row in rows}
    ceiling = next((r for r in rows if r["extra_info"].get("role") == "ceiling"), None)
    ceiling_gflops = ceiling["extra_info"].get("gflop_per_s") if ceiling else None
    targets = []
    for row in rows:
        info = row["extra_info"]
        for r in info.get("ratios", {}).values():
            if r["q3"] - r["q1"] > UNSTABLE_SPREAD * abs(r["median"]):
                info["unstable"] = True
        baseline = by_name.get(info.get("baseline", ""))
        fraction, speedup = benchcompare.median_ratios(
            info.get("gflop_per_s"),
            ceiling_gflops,
            row["stats"]["median"],
            baseline and baseline["stats"]["median"],
        )
        if fraction is not None and "fraction_of_ceiling" not in info:
            info["fraction_of_ceiling"] = fraction
        if baseline is not None and "speedup_over_baseline" not in info:
            info["speedup_over_baseline"] = speedup
        for metric, goal in info.get("target", {}).items():
            target = benchcompare.target_row(row["fullname"], metric, goal, info)
            if target["verdict"] == verdicts.UNSTABLE:
                info["unstable"] = True
            targets.append(target)
    output_json["targets"] = targets
    output_json["ratio_definition"] = benchcompare.DEFINITION
    output_json["mode"] = "quick" if config.getoption("--quick") else "full"
    output_json["noise"] = {
        # Busy processes bench/load.py started for this run (0: none of ours).
        "competing_processes": int(os.environ.get("MNIST_SUITE_BENCH_LOAD", "0")),
        "loadavg_before": LOAD_BEFORE,
        "loadavg_after": list(os.getloadavg()),
        "cores": threads.cores(),
        "ceiling": {
            str(n): {
                "median_gflop_per_s": float(np.median(v)),
                "cv": float(np.std(v) / np.mean(v)),
                "rounds": len(v),
            }
            for n, v in sorted(CEILING_GFLOPS.items())
        },
    }
