"""Loading diffusers / transformers model folders (``config.json`` + weights), neither library used.

- Configs are frozen dataclasses built with :func:`config_from_dict`: keys starting with ``_``
  and keys we do not model are ignored, except the ones a config class lists in
  ``UNSUPPORTED``, which must keep their library default (a non-default value is an error,
  not a silently wrong model).
- Weights: ``<stem>[.variant].safetensors`` (or a sharded ``.safetensors.index.json``) is
  preferred; ``.bin`` falls back to ``torch.load(weights_only=True)`` via
  :func:`diffrepro.core.checkpoints.read_state_dict`. Nothing is ever fetched from a network.
- One copy in memory: the module is built on the ``meta`` device and the checkpoint tensors
  are assigned to it (``load_state_dict(assign=True)``), cast to ``dtype`` one at a time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from diffrepro.core.checkpoints import read_state_dict

C = TypeVar("C")
M = TypeVar("M", bound=torch.nn.Module)
_MAX_LISTED = 12


def config_from_dict(cls: type[C], data: Mapping[str, Any], *, source: str = "") -> C:
    """Build the frozen config ``cls`` from a library config dict (lists become tuples)."""
    where = f" in {source}" if source else ""
    for key, default in getattr(cls, "UNSUPPORTED", {}).items():
        if key in data and data[key] != default:
            raise ValueError(f"unsupported {key}={data[key]!r}{where} (only {default!r} is)")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: _freeze(v) for k, v in data.items() if k in names and not k.startswith("_")}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ArithmeticError) as err:  # e.g. a zero head count
        raise ValueError(f"invalid {cls.__name__}{where}: {err}") from None


def read_config(folder: str | os.PathLike, name: str = "config.json") -> dict[str, Any]:
    """The JSON object ``folder/name`` (clear errors for a missing or broken file)."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"config not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data


def read_weights(
    folder: str | os.PathLike, stems: tuple[str, ...], *, variant: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict stored in ``folder`` under one of ``stems`` and the file it came from."""
    folder = Path(folder)
    infix = f".{variant}" if variant else ""
    for suffix in (".safetensors", ".bin"):
        for stem in stems:
            single = folder / f"{stem}{infix}{suffix}"
            if single.is_file():
                return read_state_dict(single), str(single)
            index = folder / f"{stem}{infix}{suffix}.index.json"
            if index.is_file():
                return _read_sharded(index), str(index)
    names = ", ".join(f"{s}{infix}.safetensors" for s in stems)
    raise FileNotFoundError(f"no weights file in {folder} (looked for {names} and .bin)")


def build_and_load(
    build: Callable[[], M],
    state_dict: dict[str, torch.Tensor],
    *,
    dtype: torch.dtype | None = torch.float32,
    source: str = "",
) -> M:
    """``build()`` on the meta device, then assign ``state_dict`` (floats cast to ``dtype``).

    A config that passes its dataclass but cannot build a module (``norm_num_groups: 0``, a
    string where a count belongs, empty block lists) is one ``ValueError`` naming ``source``."""
    where = f" for {source}" if source else ""
    try:
        with torch.device("meta"):
            module = build()
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError, IndexError, KeyError) as err:
        raise ValueError(
            f"the model config{where} does not describe a valid model: {err}"
        ) from None
    check_state_dict(module, state_dict, source=source)
    if dtype is not None:
        for key, tensor in state_dict.items():
            if tensor.is_floating_point():
                state_dict[key] = tensor.to(dtype)
    module.load_state_dict(state_dict, strict=True, assign=True)
    return module.eval()


def check_state_dict(
    module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = ""
) -> None:
    """One ValueError listing missing, unexpected and shape-mismatched keys together."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs model {shape}"
        for k, shape in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != shape
    ]
    problems = [
        _listing("missing", missing),
        _listing("unexpected", unexpected),
        _listing("shape mismatch", mismatched),
    ]
    if any(problems):
        where = f" from {source}" if source else ""
        detail = "; ".join(p for p in problems if p)
        raise ValueError(f"weights{where} do not fit {type(module).__name__}: {detail}")


def strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from the keys that carry it."""
    return {k.removeprefix(prefix): v for k, v in state_dict.items()}


def _read_sharded(index: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{index} is not a weights index (no 'weight_map')") from None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ValueError(f"{index}: 'weight_map' must map tensor names to shard file names")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        state.update(read_state_dict(index.parent / shard))
    return state


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _listing(label: str, items: list[str]) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {label}: {', '.join(items[:_MAX_LISTED])}{more}"
