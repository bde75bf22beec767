"""The original custom TensorFlow SGD loop, made fast (``tfsgd.loop`` imports TensorFlow).

This package's top level holds only what configs validate against, so job modules can import
it without loading TensorFlow; ``loop`` is imported inside ``train`` functions.
"""

from __future__ import annotations

REDUCTIONS = ("sum", "mean")  # what the tape differentiates: the batch sum (seed) or mean
UPDATES = ("assign_sub", "set_weights")  # compiled in-place update, or the original's copy-back


def parse_net(net: str) -> tuple[int, ...]:
    """Hidden widths from a ``"512-256"`` label; raises ValueError on anything else."""
    try:
        widths = tuple(int(w) for w in net.split("-"))
    except ValueError:
        widths = ()
    if not widths or min(widths) <= 0:
        raise ValueError(f"net {net!r}: expected hidden widths like '32-32' or '512-256'")
    return widths
