"""Weights as ``.npz``: ``W1, b1, W2, b2, …`` (the seed's keys) plus the architecture as JSON.

A file therefore loads without extra arguments, and never through pickle: the architecture is
a 0-d unicode array, read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from training.errors import DataError
from training.files import atomic_save_npz
from training.nn.layers import Dropout, Layer, Linear, LogSoftmax, ReLU, Sequential

FORMAT = "mnist-suite-mlp/1"
PREPROCESS = "unit"  # inputs are uint8 pixels / 255, shape (n, 784): training.data.to_unit
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


def _layer(spec: dict, where: str) -> Layer:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in _SIMPLE:
        return _SIMPLE[kind]()
    if kind == "Dropout":
        return Dropout(float(spec["p"]))
    if kind == "Linear":
        return Linear(int(spec["in"]), int(spec["out"]))
    raise DataError(f"{where}: unknown layer {spec!r} in the architecture")


def load_model(path: str | Path) -> Sequential:
    """The ``Sequential`` saved at ``path``, in eval mode, weights bit-identical to the saved ones.

    Raises
    ------
    DataError
        Not an npz, no architecture, or a weight array missing or of the wrong shape or dtype.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz weights file ({exc})") from None
    if "architecture" not in arrays:
        raise DataError(
            f"{path}: no 'architecture' key (keys: {', '.join(arrays) or 'none'}); "
            "expected a file written by training.nn.save_model"
        )
    try:
        arch = json.loads(str(arrays.pop("architecture")))
        specs, dtype = arch["layers"], np.dtype(arch["dtype"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable architecture ({exc})") from None
    if arch.get("format") != FORMAT:
        raise DataError(f"{path}: format {arch.get('format')!r}, expected {FORMAT!r}")
    if arch.get("preprocess") != PREPROCESS:
        raise DataError(f"{path}: preprocess {arch.get('preprocess')!r}, expected {PREPROCESS!r}")
    try:
        layers = [_layer(spec, str(path)) for spec in specs]
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: unreadable layer in the architecture ({exc!r})") from None
    linears = [layer for layer in layers if isinstance(layer, Linear)]
    for i, layer in enumerate(linears, start=1):
        found = []
        for key, shape in (
            (f"W{i}", (layer.out_features, layer.in_features)),
            (f"b{i}", (layer.out_features,)),
        ):
            if key not in arrays:
                raise DataError(
                    f"{path}: missing {key} (architecture needs {len(linears)} Linear layers, "
                    f"keys present: {', '.join(sorted(arrays)) or 'none'})"
                )
            got = arrays.pop(key)
            if got.shape != shape or got.dtype != dtype:
                raise DataError(
                    f"{path}: {key} has shape {got.shape} {got.dtype}, expected {shape} {dtype} "
                    f"for {layer}"
                )
            found.append(got)
        layer.set_weights(*found)
    if arrays:
        raise DataError(
            f"{path}: unexpected keys {', '.join(sorted(arrays))} for this architecture"
        )
    return Sequential(*layers).train(False)
