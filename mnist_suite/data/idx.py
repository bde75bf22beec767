"""Reader and writer for the IDX format of the original MNIST files.

Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions, one big-endian uint32 per dimension, then the data in big-endian C order.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnist_suite.errors import DataError, path_error

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


MAX_DIMS = 8
MAX_DATA_BYTES = 60000 * 28 * 28  # MNIST's largest file; nothing we read is bigger


def _read_exact(stream: BinaryIO, n: int, name: str, what: str) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise DataError(f"{name}: truncated IDX {what} ({len(data)} bytes, expected {n})")
    return data


def _read_stream(
    stream: BinaryIO,
    name: str,
    plain_size: int | None,
    shape: tuple[int, ...] | None,
    max_bytes: int,
) -> np.ndarray:
    """Parse IDX from ``stream``, refusing by the header before the data is read.

    ``plain_size`` is the file's size when it is not compressed (checked against the header
    before reading); a compressed stream is read up to the header's size plus one byte.
    """
    head = stream.read(4)
    if len(head) < 4:
        raise DataError(f"{name}: {len(head)} bytes is too short for an IDX header (expected >= 4)")
    zero0, zero1, code, ndim = head
    if zero0 or zero1 or code not in IDX_DTYPES:
        raise DataError(
            f"{name}: bad IDX magic {head.hex()} "
            f"(expected 0000 then a type code in {sorted(IDX_DTYPES)} and the dimension count)"
        )
    if not 1 <= ndim <= MAX_DIMS:
        raise DataError(f"{name}: IDX header declares {ndim} dimensions (expected 1..{MAX_DIMS})")
    dims = struct.unpack(f">{ndim}I", _read_exact(stream, 4 * ndim, name, "header"))
    dtype = IDX_DTYPES[code]
    if shape is not None and (dims, dtype.itemsize) != (tuple(shape), 1):
        raise DataError(
            f"{name}: IDX header declares {dtype.newbyteorder('=')} {dims}, "
            f"expected uint8 {tuple(shape)}"
        )
    nbytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if nbytes > max_bytes:
        raise DataError(
            f"{name}: IDX header declares {nbytes} bytes of data (shape {dims}), "
            f"more than the {max_bytes} allowed"
        )
    header_len = 4 + 4 * ndim
    if plain_size is not None and plain_size != header_len + nbytes:
        got = plain_size - header_len
        kind = "truncated" if got < nbytes else "has trailing bytes"
        raise DataError(
            f"{name}: IDX data {kind}: {got} bytes after the header, expected {nbytes} "
            f"for shape {dims}"
        )
    buf = np.empty(nbytes, dtype=np.uint8)
    view, got = memoryview(buf), 0
    # In chunks: a gzip stream asked for 47 MB at once inflates them into a temporary copy.
    while got < nbytes and (n := stream.readinto(view[got : got + (1 << 20)])):
        got += n
    if got < nbytes:
        raise DataError(
            f"{name}: IDX data truncated: {got} bytes after the header, expected {nbytes} "
            f"for shape {dims}"
        )
    if stream.read(1):
        raise DataError(
            f"{name}: IDX data has trailing bytes after the {nbytes} its shape {dims} needs"
        )
    return buf.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _parse(raw: BinaryIO, name: str, size: int, shape, max_bytes: int) -> np.ndarray:
    # Decide by content, not by file name: users rename files.
    magic = raw.read(2)
    raw.seek(0)
    try:
        if magic != b"\x1f\x8b":
            return _read_stream(raw, name, size, shape, max_bytes)
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            return _read_stream(stream, name, None, shape, max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        raise path_error(
            exc, f"{name}: corrupted or truncated gzip data ({exc})", DataError
        ) from None


def parse_idx(
    raw: bytes,
    name: str = "<bytes>",
    shape: tuple[int, ...] | None = None,
    max_bytes: int = MAX_DATA_BYTES,
) -> np.ndarray:
    """Parse IDX bytes (optionally gzip-compressed) into a native-endian array.

    Parameters
    ----------
    raw : bytes
        The file's content.
    name : str
        Used in error messages (normally the file path).
    shape : tuple of int, optional
        The only shape accepted (uint8), checked on the header before any data is read.
    max_bytes : int
        Largest data section accepted; a gzip stream is never inflated beyond it.

    Returns
    -------
    ndarray of shape given by the header, native byte order.
    """
    return _parse(io.BytesIO(raw), name, len(raw), shape, max_bytes)


def read_idx(
    path: str | Path,
    shape: tuple[int, ...] | None = None,
    max_bytes: int = MAX_DATA_BYTES,
) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain), streaming; see :func:`parse_idx`.

    Memory is the array itself: a plain file's size is checked against its header first, and
    a compressed one is inflated into the array, never past what its header declares.
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO blocks its reader
            raise DataError(f"{path}: not a regular file")
        with open(path, "rb") as raw:
            return _parse(raw, str(path), os.fstat(raw.fileno()).st_size, shape, max_bytes)
    except OSError as exc:
        raise path_error(exc, f"{path}: cannot read ({exc.strerror})", DataError) from None


def to_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of :func:`parse_idx`)."""
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
