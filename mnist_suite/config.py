"""Frozen config dataclasses and strict ``key=value`` overrides: unknown keys, bad types fail."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from typing import Any

from mnist_suite.errors import ConfigError, ParameterError
from mnist_suite.limits import MAX_CELLS, combinations

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(kind: Any, text: str, key: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if text.lower() in ("none", "null", ""):
            return None
        return _parse(args[0], text, key)
    if origin is tuple:
        inner = typing.get_args(kind)[0]
        items = [t.strip() for t in text.split(",", MAX_CELLS) if t.strip()]
        if len(items) > MAX_CELLS:
            raise ConfigError(f"override {key}: at most {MAX_CELLS} values")
        return tuple(_parse(inner, t, key) for t in items)
    try:
        if kind is bool:
            low = text.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError
            return low in _TRUE
        if kind is int:
            if len(text) > 18:  # beyond any count or size here; also bounds int()'s work
                raise ConfigError(f"override {key}={text[:20]}...: too many digits")
            return int(text)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ConfigError(f"override {key}={text}: expected a finite number")
            return value
        if kind is str:
            return text
    except ValueError:
        raise ConfigError(f"override {key}={text}: expected {kind.__name__}") from None
    raise ConfigError(f"override {key}: type {kind} cannot be overridden")


def overridable(kind: Any) -> bool:
    """Can :func:`apply_overrides` parse a value of the annotated ``kind`` (bool, int, float,
    str, ``tuple[one of them, ...]``, or one of these | None)?"""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return len(args) == 1 and overridable(args[0])
    if origin is tuple:
        args = typing.get_args(kind)
        return len(args) == 2 and args[1] is Ellipsis and overridable(args[0])
    return kind in (bool, int, float, str)


def apply_overrides(config: Any, pairs: list[str]) -> Any:
    """Return ``config`` with ``key=value`` overrides applied, each parsed by the field's type.

    Tuples are comma-separated (``widths=256,128``); booleans accept true/false/1/0.
    """
    hints = typing.get_type_hints(type(config))
    names = [f.name for f in dataclasses.fields(config)]
    changes = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"override {pair!r}: expected key=value")
        if key not in names:
            raise ConfigError(
                f"override {key}: unknown key for {type(config).__name__} "
                f"(valid: {', '.join(names)})"
            )
        changes[key] = _parse(hints[key], text.strip(), key)
    # A grid's cells are the product of its lists: refuse a huge one before it is built.
    cells = combinations(config, changes)
    if cells > MAX_CELLS:
        raise ConfigError(f"overrides: the lists make up to {cells} cells, more than {MAX_CELLS}")
    config = dataclasses.replace(config, **changes)
    check_finite(config)
    return config


def check_finite(config: Any) -> None:
    """Refuse NaN or infinite floats anywhere in ``config`` (a profile's value or an override).

    Every job's config passes here, so no job can train with ``lr=inf`` whatever its own checks.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple | list) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ParameterError(f"{f.name}={value}: expected a finite number")


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(*parts: Any) -> str:
    """Short stable hash of JSON-serialisable parts: the identity of a run."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]
