"""BLAS thread policy: how many threads NumPy's matrix products may use at a call site.

OpenBLAS splits a product across threads that spin-wait on each other. On a quiet machine two
threads make a large GEMM almost twice as fast; on a busy one (another process on a core) a
waiting thread stalls the others, and the small products of a training step (batch 128 ×
784 × 512 and less) become 4–10× slower than on one thread (measured; see the README's benchmark
section). One thread also has no wake-up cost between calls. The rule, measured on 2 cores:

- products under ``SMALL_FLOPS`` (all of this suite's NumPy training steps) use one thread;
- larger ones use every core, unless the machine is loaded (1-minute load average at or above
  ``cores - 0.5``: some other process is already runnable), then one thread.

The thread count changes float32 rounding (about 5e-7 relative: OpenBLAS's one-thread path
blocks the sum differently), so the choice for the jobs' small products never depends on the
load: a training run gives the same bits on a quiet machine and a busy one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextlib import ContextDecorator
from typing import Any

from threadpoolctl import threadpool_info, threadpool_limits

# 2·m·n·k of the largest product below which one thread is the default: a 784-512-256-10 step at
# batch 128 has 2·128·784·512 ≈ 1.0e8; a 1024³ GEMM has 2.1e9.
SMALL_FLOPS = 5e8
# A load average this far below the core count means no other process is competing for a core.
LOADED_MARGIN = 0.5

# What the policy chose, per call site, in this process (recorded in machine_info).
CHOSEN: dict[str, int] = {}


def cores() -> int:
    """CPUs this process may run on (the affinity mask, e.g. a container's --cpuset-cpus)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def loaded() -> bool:
    """Whether other processes already keep (almost) every core busy."""
    try:
        return os.getloadavg()[0] >= cores() - LOADED_MARGIN
    except OSError:
        return False


def policy(flops: float | None = None) -> int:
    """BLAS threads for a call site whose largest matrix product costs ``flops`` (2·m·n·k).

    ``None`` means a training step of this suite's nets: small.
    """
    if flops is None or flops < SMALL_FLOPS or loaded():
        return 1
    return cores()


class blas_threads(ContextDecorator):
    """Limit BLAS threads inside a ``with`` block or a decorated function, restoring them after.

    Parameters
    ----------
    n : int, optional
        Threads to use; by default the :func:`policy` for ``flops``, decided on each entry (so a
        decorated training epoch follows the machine's load epoch by epoch).
    flops : float, optional
        Cost of the call site's largest product, for the policy.
    site : str
        Name under which the choice is recorded in :data:`CHOSEN`.
    """

    def __init__(self, n: int | None = None, *, flops: float | None = None, site: str = ""):
        self.n, self.flops, self.site = n, flops, site
        self._limits: list[Any] = []

    def __call__(self, func: Callable) -> Callable:
        if not self.site:
            self.site = f"{func.__module__}.{func.__qualname__}"
        return super().__call__(func)

    def __enter__(self) -> int:
        n = self.n if self.n is not None else policy(self.flops)
        CHOSEN[self.site or "block"] = n
        # A fresh scan each time: BLAS libraries loaded since (SciPy's, TensorFlow's) count too.
        self._limits.append(threadpool_limits(limits=n, user_api="blas"))
        return n

    def __exit__(self, *exc: object) -> None:
        self._limits.pop().restore_original_limits()


def current() -> int | None:
    """BLAS threads now in effect (the largest over loaded libraries; None if none loaded)."""
    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else None


@functools.cache
def rule() -> dict:
    """The policy's parameters, for machine_info."""
    return {
        "rule": "1 thread below small_flops or when loaded, else all cores",
        "small_flops": SMALL_FLOPS,
        "loaded_at_loadavg": f"cores - {LOADED_MARGIN}",
    }


def describe() -> dict:
    """Policy, cores, load and the choices made so far in this process (for machine_info)."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {**rule(), "cores": cores(), "loadavg": load, "chosen": dict(CHOSEN)}
