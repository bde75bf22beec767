"""Weights as ``.npz``: ``W1, b1, W2, b2, …`` (the original's keys) plus the architecture as JSON.

A file therefore loads without extra arguments, and never through pickle: the architecture is
a 0-d unicode array, read with ``allow_pickle=False``.
"""

from __future__ import annotations

import itertools
import json
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mnist_suite.errors import DataError, path_error
from mnist_suite.files import atomic_save_npz, npy_header
from mnist_suite.limits import MAX_LINEAR, MAX_PARAMS, MAX_WIDTH
from mnist_suite.nn.layers import Dropout, Layer, Linear, LogSoftmax, ReLU, Sequential

FORMAT = "mnist-suite-mlp/1"
PREPROCESS = "unit"  # inputs are uint8 pixels / 255, shape (n, 784): mnist_suite.data.to_unit
_SIMPLE = {"ReLU": ReLU, "LogSoftmax": LogSoftmax}


def model_arrays(model: Sequential) -> dict[str, np.ndarray]:
    """``{"W1": ..., "b1": ..., ..., "architecture": 0-d str}`` for ``np.savez``."""
    arrays: dict[str, np.ndarray] = {}
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    for i, layer in enumerate(linears, start=1):
        arrays[f"W{i}"], arrays[f"b{i}"] = layer.W, layer.b
    dtype = str(linears[0].W.dtype) if linears else "float32"
    architecture = {
        "format": FORMAT,
        "dtype": dtype,
        "preprocess": PREPROCESS,
        "layers": [layer.spec() for layer in model.layers],
    }
    arrays["architecture"] = np.array(json.dumps(architecture))
    return arrays


def save_model(path: str | Path, model: Sequential) -> Path:
    """Write ``model`` to ``path`` (.npz) atomically."""
    path = Path(path)
    atomic_save_npz(path, **model_arrays(model))
    return path


# Limits of a weights file, from the architecture it declares (checked before loading any array).
# Width, layer and parameter caps are the configs' own (mnist_suite.limits): what trains loads.
MAX_LAYERS = 64  # entries in the architecture
MAX_ARCHITECTURE_CHARS = 1 << 16
MAX_FILE_BYTES = MAX_PARAMS * 8 + (1 << 20)
DTYPES = ("float32", "float64")


def _headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in the file, read from the ``.npy`` headers only."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{path}: {size} bytes, more than any model within the limits "
            f"({MAX_PARAMS} parameters) can take"
        )
    headers = {}
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            key = member.removesuffix(".npy")
            shape, dtype = npy_header(zf, member)
            if dtype.hasobject:
                raise ValueError(f"{key} holds pickled objects, and allow_pickle is off")
            headers[key] = (shape, dtype)
    return headers


def _int_in(spec: dict, key: str, low: int, high: int) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key}={value!r} must be an integer in [{low}, {high}]")
    return value


def _layer(spec: dict, where: str) -> Layer:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in _SIMPLE:
        return _SIMPLE[kind]()
    if kind == "Dropout":
        p = spec["p"]
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 1:
            raise ValueError(f"p={p!r} must be a number in [0, 1)")
        return Dropout(float(p))
    if kind == "Linear":
        return Linear(_int_in(spec, "in", 1, MAX_WIDTH), _int_in(spec, "out", 1, MAX_WIDTH))
    raise DataError(f"{where}: unknown layer {spec!r} in the architecture")


def _check_sizes(specs: list, path: Path) -> None:
    """Limits and consistency of the declared Linear sizes, before any layer is built."""
    if not isinstance(specs, list) or not 1 <= len(specs) <= MAX_LAYERS:
        raise DataError(f"{path}: the architecture needs a list of 1..{MAX_LAYERS} layers")
    linears = [s for s in specs if isinstance(s, dict) and s.get("type") == "Linear"]
    if len(linears) > MAX_LINEAR:
        raise DataError(f"{path}: {len(linears)} Linear layers, more than {MAX_LINEAR}")
    try:
        dims = [(_int_in(s, "in", 1, MAX_WIDTH), _int_in(s, "out", 1, MAX_WIDTH)) for s in linears]
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: unreadable layer in the architecture ({exc!r})") from None
    for (_, out), (nxt, _) in itertools.pairwise(dims):
        if out != nxt:
            raise DataError(f"{path}: a Linear layer gives {out} features, the next takes {nxt}")
    params = sum(i * o + o for i, o in dims)
    if params > MAX_PARAMS:
        raise DataError(f"{path}: {params} parameters, more than the {MAX_PARAMS} allowed")


def load_model(path: str | Path) -> Sequential:
    """The ``Sequential`` saved at ``path``, in eval mode, weights bit-identical to the saved ones.

    Everything is checked before an array is loaded: the file's size, the architecture against
    the limits (:data:`MAX_WIDTH`, :data:`MAX_LINEAR`, :data:`MAX_PARAMS`), and each array's
    ``.npy`` header against the shape and dtype the architecture implies.

    Raises
    ------
    DataError
        Not an npz, no architecture, an architecture beyond the limits, or a weight array
        missing or of the wrong shape or dtype.
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO blocks its reader, a device never ends
            raise DataError(f"{path}: not a regular file; expected a .npz weights file")
        headers = _headers(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise path_error(
            exc, f"{path}: not a readable .npz weights file ({why})", DataError
        ) from None
    if "architecture" not in headers:
        raise DataError(
            f"{path}: no 'architecture' key (keys: {', '.join(headers) or 'none'}); "
            "expected a classifier's weights: a softmax* or mlp* run's artifacts/weights.npz"
        )
    shape, dtype = headers.pop("architecture")
    if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_ARCHITECTURE_CHARS:
        raise DataError(f"{path}: architecture is {dtype} {shape}, expected a JSON string")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arch = json.loads(str(npz["architecture"]))
        specs, dtype = arch["layers"], arch["dtype"]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error) as exc:
        raise path_error(exc, f"{path}: unreadable architecture ({exc})", DataError) from None
    if arch.get("format") != FORMAT:
        raise DataError(f"{path}: format {arch.get('format')!r}, expected {FORMAT!r}")
    if arch.get("preprocess") != PREPROCESS:
        raise DataError(f"{path}: preprocess {arch.get('preprocess')!r}, expected {PREPROCESS!r}")
    if dtype not in DTYPES:
        raise DataError(f"{path}: dtype {dtype!r}, expected one of {', '.join(DTYPES)}")
    dtype = np.dtype(dtype)
    _check_sizes(specs, path)
    try:
        layers = [_layer(spec, str(path)) for spec in specs]
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: unreadable layer in the architecture ({exc!r})") from None
    linears = [layer for layer in layers if isinstance(layer, Linear)]
    for i, layer in enumerate(linears, start=1):
        for key, shape in (
            (f"W{i}", (layer.out_features, layer.in_features)),
            (f"b{i}", (layer.out_features,)),
        ):
            if key not in headers:
                raise DataError(
                    f"{path}: missing {key} (architecture needs {len(linears)} Linear layers, "
                    f"keys present: {', '.join(sorted(headers)) or 'none'})"
                )
            got_shape, got_dtype = headers.pop(key)
            if got_shape != shape or got_dtype != dtype:
                raise DataError(
                    f"{path}: {key} has shape {got_shape} {got_dtype}, expected {shape} {dtype} "
                    f"for {layer}"
                )
    if headers:
        raise DataError(
            f"{path}: unexpected keys {', '.join(sorted(headers))} for this architecture"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            for i, layer in enumerate(linears, start=1):
                weights, bias = npz[f"W{i}"], npz[f"b{i}"]
                for key, array in ((f"W{i}", weights), (f"b{i}", bias)):
                    if not np.isfinite(array).all():
                        # A diverged model would classify every image, with probability NaN.
                        bad = int(array.size - np.isfinite(array).sum())
                        raise DataError(
                            f"{path}: {key} holds {bad} NaN or infinite values; not a usable model"
                        )
                layer.set_weights(weights, bias)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise path_error(
            exc, f"{path}: not a readable .npz weights file ({exc})", DataError
        ) from None
    return Sequential(*layers).train(False)
