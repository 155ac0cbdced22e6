"""Configs are frozen dataclasses: presets, ``--set key=value`` overrides, and JSON round trips.

Every run directory and every checkpoint carries its config as JSON, so a result can always be
traced back to the exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

Cfg = TypeVar("Cfg")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def select_preset(presets: Mapping[str, Cfg], name: str) -> Cfg:
    """The preset called ``name``; a clear error lists the known presets."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r} (known presets: {', '.join(presets)})")
    return presets[name]


def apply_overrides(cfg: Cfg, overrides: Iterable[str]) -> Cfg:
    """Return ``cfg`` with each ``"key=value"`` (``"sub.key=value"`` for nested configs) applied.

    Values are parsed to the field's annotated type: int, float, bool, str, tuples (``1,2,4`` or
    a JSON list), ``None`` for optional fields, and JSON for anything else.
    """
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        cfg = _replace_path(cfg, key.strip().split("."), value.strip())
    return cfg


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass; tuples become lists."""
    if not dataclasses.is_dataclass(cfg):
        raise TypeError(f"expected a config dataclass, got {type(cfg).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def save_config(cfg: Any, path: Path) -> Path:
    """Write ``cfg`` as indented JSON to ``path`` (folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_to_dict(cfg), indent=2, sort_keys=True) + "\n")
    return path


def load_config(path: Path, cls: type[Cfg]) -> Cfg:
    """Read a config saved by :func:`save_config` back into ``cls``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    return config_from_dict(cls, json.loads(path.read_text()))


def config_from_dict(cls: type[Cfg], data: Mapping[str, Any]) -> Cfg:
    """Build ``cls`` from a dict, converting values to the annotated field types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    kwargs = {name: _coerce(hints[name], value, name) for name, value in data.items()}
    return cls(**kwargs)


def _replace_path(cfg: Any, path: list[str], raw: str) -> Any:
    if not dataclasses.is_dataclass(cfg):
        raise ValueError(f"cannot set {'.'.join(path)}: the parent is not a config")
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    name = path[0]
    if name not in fields:
        raise ValueError(
            f"{type(cfg).__name__} has no field {name!r} (fields: {', '.join(fields)})"
        )
    current = getattr(cfg, name)
    if len(path) > 1:
        return dataclasses.replace(cfg, **{name: _replace_path(current, path[1:], raw)})
    hint = typing.get_type_hints(type(cfg))[name]
    return dataclasses.replace(cfg, **{name: _parse(hint, raw, name)})


def _parse(hint: Any, raw: str, name: str) -> Any:
    """Parse a command-line string into the type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in {"none", "null"} and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(arg, raw, name)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"cannot parse {raw!r} for {name}: {'; '.join(errors)}")
    if hint is bool:
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ValueError(f"{name} expects true/false, got {raw!r}")
    if hint in (int, float, str):
        try:
            return hint(raw)
        except ValueError as err:
            raise ValueError(f"{name} expects {hint.__name__}, got {raw!r}") from err
    if origin in (tuple, list):
        items = json.loads(raw) if raw.startswith("[") else [s for s in raw.split(",") if s]
        item_type = args[0] if args else str
        return origin(_parse(item_type, str(i), name) for i in items)
    try:
        return _coerce(hint, json.loads(raw), name)
    except json.JSONDecodeError as err:
        raise ValueError(f"cannot parse {raw!r} for {name}") from err


def _coerce(hint: Any, value: Any, name: str) -> Any:
    """Convert a JSON value to ``hint`` (lists to tuples, nested dicts to dataclasses)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return config_from_dict(hint, value)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, name) if len(inner) == 1 else value
    if origin is tuple and isinstance(value, list):
        item = args[0] if args else Any
        return tuple(_coerce(item, v, name) for v in value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value
