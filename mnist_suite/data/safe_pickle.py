"""A restricted unpickler for the registry's ``mnist.pkl.gz``: NumPy arrays and nothing else.

A pickle can name any importable callable and call it while loading; this one resolves only the
three globals NumPy uses to rebuild an ndarray and refuses everything else.
"""

from __future__ import annotations

import io
import pickle

import numpy as np
from numpy._core import multiarray

from mnist_suite.errors import DataError

_ALLOWED = {
    # Pickles written by NumPy 1.x name `numpy.core`; NumPy 2 moved it to `numpy._core`.
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` allows only NumPy's array reconstruction."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only NumPy arrays are allowed)"
            ) from None


def load_arrays_pickle(raw: bytes, name: str = "<bytes>"):
    """Unpickle ``raw`` allowing only NumPy arrays, tuples, lists and plain values.

    Python 2 pickles (like the classic ``mnist.pkl.gz``) need ``latin1`` to rebuild their
    byte strings, which is what NumPy's array state is.
    """
    try:
        return ArrayOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{name}: {exc}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"{name}: corrupted or truncated pickle ({exc})") from None
