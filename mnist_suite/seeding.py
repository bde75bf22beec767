"""One place derives every random stream of a run from its seed and a stream name.

``rng(seed, "init")`` and ``rng(seed, "order")`` are independent generators; the same
(seed, name) always gives the same stream, on any machine. Jobs ask for streams by name
instead of seeding themselves, so adding a stream never shifts another one.
"""

from __future__ import annotations

import hashlib

import numpy as np

# The names in use, so a typo is an error rather than a silently new stream.
STREAMS = (
    "init",  # weight initialisation
    "order",  # shuffling and batch draws
    "dev",  # the dev split (shared by every run of a seed, whatever the job)
    "augment",  # data augmentation
    "noise",  # denoising inputs
    "dropout",
    "tf",  # TensorFlow's global seed (tf.random.set_seed / keras.utils.set_random_seed)
    "sample",  # subsets and picks for figures
)


def stream_key(name: str) -> int:
    """A stable 32-bit key for a stream name (sha256; independent of Python's hash seed)."""
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r} (known: {', '.join(STREAMS)})")
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def rng(seed: int, name: str) -> np.random.Generator:
    """The NumPy generator of stream ``name`` of a run with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stream_key(name)]))


def int_seed(seed: int, name: str) -> int:
    """A 31-bit integer seed for libraries that take one (TensorFlow, scikit-learn)."""
    ss = np.random.SeedSequence([int(seed), stream_key(name)])
    return int(ss.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def seed_tensorflow(seed: int) -> int:
    """Seed TensorFlow and Keras from stream ``tf`` of ``seed``; make TF ops deterministic.

    ``keras.utils.set_random_seed`` also seeds Python's ``random`` and NumPy's legacy global
    generator (which no job of ours draws from). Process-wide; returns the integer used.
    """
    import keras
    import tensorflow as tf

    value = int_seed(seed, "tf")
    keras.utils.set_random_seed(value)
    tf.config.experimental.enable_op_determinism()
    return value
