"""Progress for long work: a live bar on a terminal, one line per epoch otherwise (CI logs).

The epoch lines go to the logger ``mnist_suite.progress`` at INFO; the command line shows them
as they are, with or without ``-v``.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

from mnist_suite.text import printable

log = logging.getLogger(__name__)


class Progress:
    """Steps with loss, samples/s and ETA on a terminal; ``epoch()`` lines everywhere.

    Parameters
    ----------
    total : int
        Total steps of the whole run (for the ETA).
    desc : str
        Shown before the bar and at the start of every epoch line.
    samples_per_step : int
        Used for the samples/s figure.
    """

    def __init__(self, total: int, desc: str, samples_per_step: int = 1, stream=None):
        self.stream = stream or sys.stderr
        self.desc = printable(desc)  # a cell label may quote any config string
        self.samples_per_step = samples_per_step
        self.start = time.perf_counter()
        self.done = 0
        live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(
            total=total,
            desc=desc,
            file=self.stream,
            disable=not live,
            unit="step",
            dynamic_ncols=True,
            leave=False,
        )

    def update(self, steps: int = 1, **values: float) -> None:
        self.done += steps
        if not self.bar.disable:
            self.bar.update(steps)
            if values:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)

    def epoch(self, epoch: int, **values: float) -> None:
        """One summary line, logged (or written above the live bar, when one is shown)."""
        elapsed = time.perf_counter() - self.start
        rate = self.done * self.samples_per_step / elapsed if elapsed > 0 else 0.0
        parts = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        line = f"{self.desc} epoch {epoch}: {parts} ({rate:,.0f} samples/s, {elapsed:.1f}s)"
        if self.bar.disable:
            log.info("%s", line)
        else:
            self.bar.write(line, file=self.stream)

    def close(self) -> None:
        self.bar.close()
