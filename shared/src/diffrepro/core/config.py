"""Configs are frozen dataclasses: presets, ``--set key=value`` overrides, and JSON round trips.

Every run directory and every checkpoint carries its config as JSON, so a result can always be
traced back to the exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import json
import math
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

    Values are parsed to the field's annotated type: int, float (finite only), bool, str, tuples
    (``1,2,4`` or a JSON list; a fixed-length tuple must get that many items), ``None`` for
    optional fields, and JSON for anything else. The config's own checks (``__post_init__``) run
    on the result; every error names the ``--set`` item.
    """
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            cfg = _replace_path(cfg, key.strip().split("."), value.strip())
        except (ValueError, TypeError) as err:
            raise ValueError(f"--set {item}: {err}") from None
    return cfg


def check_ranges(
    cfg: Any,
    *,
    positive: Iterable[str] = (),
    nonnegative: Iterable[str] = (),
    fraction: Iterable[str] = (),
    choices: Mapping[str, Iterable[Any]] | None = None,
) -> None:
    """Range checks for a config's ``__post_init__``: a ``ValueError`` names the first field that
    is not > 0 (``positive``), not >= 0 (``nonnegative``), not in [0, 1] (``fraction``) or not one
    of its ``choices``. ``None`` values (optional fields) are skipped; non-finite floats fail."""
    name = type(cfg).__name__
    for field_name in positive:
        _check_number(cfg, field_name, lambda v: v > 0, "> 0", name)
    for field_name in nonnegative:
        _check_number(cfg, field_name, lambda v: v >= 0, ">= 0", name)
    for field_name in fraction:
        _check_number(cfg, field_name, lambda v: 0 <= v <= 1, "in [0, 1]", name)
    for field_name, allowed in (choices or {}).items():
        allowed = tuple(allowed)
        if getattr(cfg, field_name) not in allowed:
            raise ValueError(
                f"{name}.{field_name} must be one of {', '.join(map(repr, allowed))}, "
                f"got {getattr(cfg, field_name)!r}"
            )


def _check_number(cfg: Any, field_name: str, ok: Any, rule: str, name: str) -> None:
    value = getattr(cfg, field_name)
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        bad = isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
        if bad or not ok(v):
            raise ValueError(f"{name}.{field_name} must be {rule}, got {value!r}")


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config file {path} is not valid JSON: {err}") from None
    try:
        return config_from_dict(cls, data)
    except ValueError as err:
        raise ValueError(f"config file {path}: {err}") from None


def config_from_dict(cls: type[Cfg], data: Mapping[str, Any]) -> Cfg:
    """Build ``cls`` from a dict, converting values to the annotated field types.

    Values of the wrong type (``"four"`` for an int, a list for a nested config) and values the
    config's own checks reject raise ``ValueError`` naming the field."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a {cls.__name__} must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(map(str, unknown))}")
    kwargs = {name: _coerce(hints[name], value, name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ValueError(f"{cls.__name__}: {err}") from None


def config_from_saved(
    cls: type[Cfg], data: Any, source: str, *, saved_class: str | None = None
) -> Cfg:
    """:func:`config_from_dict` for a config read from a file or checkpoint ``source``.

    Errors name ``source``; a config saved from another class (``saved_class``, the
    ``module.QualName`` recorded by core train, e.g. ``diffrepro.adir.config.ADIRConfig``) is
    reported as a checkpoint of that package rather than as a list of unknown fields."""
    expected = f"{cls.__module__}.{cls.__qualname__}"
    if saved_class and saved_class != expected:
        raise ValueError(
            f"{source} is a checkpoint of {_package_of(saved_class)} "
            f"({saved_class.rsplit('.', 1)[-1]}), not of {_package_of(expected)} ({cls.__name__})"
        )
    try:
        return config_from_dict(cls, data)
    except ValueError as err:
        hint = " (a checkpoint of another paper?)" if "has no field" in str(err) else ""
        raise ValueError(f"{source} does not hold a valid {cls.__name__}: {err}{hint}") from None


def _package_of(qualname: str) -> str:
    parts = qualname.split(".")
    if len(parts) > 2 and parts[0] == "diffrepro":
        return f"`{parts[1]}`" if parts[1] != "core" else "diffrepro-core"
    return parts[0]


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
            value = hint(raw)
        except ValueError as err:
            raise ValueError(f"{name} expects {hint.__name__}, got {raw!r}") from err
        if hint is float and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {raw!r}")
        return value
    if origin in (tuple, list):
        try:
            items = json.loads(raw) if raw.startswith("[") else [s for s in raw.split(",") if s]
        except json.JSONDecodeError as err:
            raise ValueError(f"cannot parse {raw!r} for {name}: {err}") from None
        if not isinstance(items, list):
            raise ValueError(f"{name} expects a list, got {raw!r}")
        _check_length(hint, len(items), name)
        item_types = _item_types(hint, len(items))
        return origin(_parse(t, str(i), name) for t, i in zip(item_types, items))
    try:
        return _coerce(hint, json.loads(raw), name)
    except json.JSONDecodeError as err:
        raise ValueError(f"cannot parse {raw!r} for {name}") from err


def _coerce(hint: Any, value: Any, name: str) -> Any:
    """Convert a JSON value to ``hint`` (lists to tuples, nested dicts to dataclasses), checking
    its type: a ``ValueError`` names the field when the value does not fit."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        if hint is Any or (origin in (typing.Union, types.UnionType) and type(None) in args):
            return None
        raise ValueError(f"{name} must not be null")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a JSON object, got {type(value).__name__}")
        try:
            return config_from_dict(hint, value)  # type: ignore[arg-type]
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, name) if len(inner) == 1 else value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {type(value).__name__}")
        _check_length(hint, len(value), name)
        items = [_coerce(t, v, name) for t, v in zip(_item_types(hint, len(value)), value)]
        return origin(items)
    return _coerce_scalar(hint, value, name)


def _coerce_scalar(hint: Any, value: Any, name: str) -> Any:
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _check_length(hint: Any, n: int, name: str) -> None:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and args[-1] is not Ellipsis and n != len(args):
        raise ValueError(f"{name} expects {len(args)} values, got {n}")


def _item_types(hint: Any, n: int) -> list[Any]:
    args = typing.get_args(hint)
    if not args:
        return [Any] * n
    if typing.get_origin(hint) is tuple and Ellipsis not in args and len(args) == n:
        return list(args)
    return [args[0]] * n
