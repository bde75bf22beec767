"""Reader and writer for the IDX format of the original MNIST files.

Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions, one big-endian uint32 per dimension, then the data in big-endian C order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from training.errors import DataError

# type code -> big-endian dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


def _maybe_gunzip(raw: bytes, name: str) -> bytes:
    # Decide by content, not by file name: users rename files.
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: corrupted or truncated gzip data ({exc})") from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (optionally gzip-compressed) into a native-endian array.

    Parameters
    ----------
    raw : bytes
        The file's content.
    name : str
        Used in error messages (normally the file path).

    Returns
    -------
    ndarray of shape given by the header, native byte order.
    """
    data = _maybe_gunzip(raw, name)
    if len(data) < 4:
        raise DataError(f"{name}: {len(data)} bytes is too short for an IDX header (expected >= 4)")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 or zero1 or code not in IDX_DTYPES:
        raise DataError(
            f"{name}: bad IDX magic {data[:4].hex()} "
            f"(expected 0000 then a type code in {sorted(IDX_DTYPES)} and the dimension count)"
        )
    if ndim == 0:
        raise DataError(f"{name}: IDX header declares 0 dimensions (expected >= 1)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes, expected {header_len})")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header_len
    if got != expected:
        kind = "truncated" if got < expected else "has trailing bytes"
        raise DataError(
            f"{name}: IDX data {kind}: {got} bytes after the header, expected {expected} "
            f"for shape {dims}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain); see :func:`parse_idx`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_idx(raw, str(path))


def to_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of :func:`parse_idx`)."""
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
