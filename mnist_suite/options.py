"""Options declared once: a dataclass field carries its command-line argument.

A launcher's options are a frozen dataclass whose fields are made with :func:`option` (default,
help and how the argument reads). The command line builds its arguments from the fields
(:func:`add_arguments`), fills the dataclass back from the parsed values (:func:`from_arguments`),
and a pool passes the same options on to a worker's command line (:func:`to_argv`).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from mnist_suite.errors import ConfigError


def option(default: Any, help: str, **argument: Any) -> Any:
    """A field of an options dataclass that the command line offers as ``--field-name``.

    ``argument`` may hold ``flag`` (one spelling or a tuple of them), ``type``, ``choices``,
    ``metavar``, ``cli_default`` (the command line's default, when it differs), ``pairs`` (items
    given as ``KEY=VALUE``) and ``none`` (an integer that may be ``none``).
    """
    return dataclasses.field(default=default, metadata={"help": help, **argument})


def path(text: str) -> Path:
    """A path argument; a NUL character (possible only from a program, never a shell) is refused."""
    if "\0" in text:
        raise argparse.ArgumentTypeError("a path cannot contain a NUL character")
    return Path(text)


def optional_int(text: str) -> int | None:
    """An integer argument, or ``none``."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer or 'none'") from None


def flags(f: dataclasses.Field) -> tuple[str, ...]:
    """The spellings of a field's argument: ``--field-name`` unless its metadata names them."""
    flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
    return (flag,) if isinstance(flag, str) else tuple(flag)


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> None:
    """One argument per field of ``cls`` made with :func:`option` (others are not offered);
    fields with the same ``exclusive`` name exclude each other."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or "help" not in f.metadata or (only and f.name not in only):
            continue
        meta = {k: v for k, v in f.metadata.items() if k not in ("flag", "pairs", "none")}
        default = meta.pop("cli_default", f.default)
        kind = meta.pop("type", str if default is None else type(default))
        if exclusive := meta.pop("exclusive", None):
            if exclusive not in groups:
                groups[exclusive] = parser.add_mutually_exclusive_group()
            group = groups[exclusive]
        else:
            group = parser
        if not flags(f)[0].startswith("-"):  # a positional: its values are the default's kind
            group.add_argument(f.name, default=[], **meta)
        elif isinstance(default, bool):
            group.add_argument(*flags(f), dest=f.name, action="store_true", **meta)
        elif isinstance(default, tuple):
            group.add_argument(*flags(f), dest=f.name, action="append", default=[], **meta)
        else:
            kind = optional_int if f.metadata.get("none") else kind
            kind = path if isinstance(kind, type) and issubclass(kind, Path) else kind
            group.add_argument(*flags(f), dest=f.name, type=kind, default=default, **meta)


def from_arguments(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """``cls`` filled from the parsed arguments of the same names (``given`` wins)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in given or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if f.metadata.get("pairs"):
            value = pairs(value, flags(f)[0])
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values, **given)


def to_argv(options: Any, names: tuple[str, ...]) -> list[str]:
    """The command-line arguments that give a worker the fields ``names`` of ``options``:
    a true flag as itself, a value after its flag; false and None are left out."""
    by_name = {f.name: f for f in dataclasses.fields(options)}
    argv: list[str] = []
    for name in names:
        value, flag = getattr(options, name), flags(by_name[name])[0]
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


def pairs(texts: list[str], flag: str) -> tuple[tuple[str, str], ...]:
    """``["k=v", ...]`` -> ``(("k", "v"), ...)``; a text without ``=`` is a ConfigError."""
    found = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep:
            raise ConfigError(f"{flag} {text!r}: expected KEY=VALUE")
        found.append((key, value))
    return tuple(found)
