"""Reading and writing weights: safetensors with the config as JSON metadata.

- ``read_state_dict(path)``: any weights file into a flat ``{name: tensor}`` dict. ``.safetensors``
  is read with safetensors; pickles (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) only through
  ``torch.load(weights_only=True, map_location="cpu")``, so a foreign file cannot run code. A
  top-level ``"state_dict"`` entry (Lightning / CompVis layout) is unwrapped.
- ``load_state_dict(module, state_dict, source=...)``: strict loading with one ``ValueError`` that
  lists missing, unexpected and shape-mismatched keys together. Tensors are cast to the module's
  dtypes by ``Module.load_state_dict`` (e.g. fp16 weights into an fp32 model).
- ``save_checkpoint(path, weights, config)`` / ``load_checkpoint(path)``: our own format, a
  safetensors file whose metadata key ``"config"`` holds the config as JSON. Writes are atomic
  (temporary file in the same folder, then ``os.replace``), so a crash never leaves a half file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
CONFIG_KEY = "config"
_MAX_LISTED = 20


def read_state_dict(path: str | os.PathLike, *, key: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors stored in a ``.safetensors`` or pickle weights file, on the CPU.

    ``key`` selects a nested entry of a pickled dict (e.g. ``"ema_state_dict"``) instead of the
    default (a top-level ``"state_dict"`` if present, else the whole dict).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder, expected a weights file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        if key is not None:
            raise ValueError(f"{path}: key= only applies to pickled checkpoints")
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        return _read_pickle(path, key)
    raise ValueError(
        f"unsupported checkpoint format {suffix!r} for {path}: use .safetensors, "
        + ", ".join(PICKLE_SUFFIXES)
    )


def load_state_dict(
    module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = ""
) -> None:
    """Strictly load ``state_dict`` into ``module``; one ValueError lists every mismatch."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        where = f" from {source}" if source else ""
        parts = [
            _listing("missing keys", missing),
            _listing("unexpected keys", unexpected),
            _listing("shape mismatches", mismatched),
        ]
        detail = "; ".join(p for p in parts if p)
        raise ValueError(f"cannot load weights into {type(module).__name__}{where}: {detail}")
    module.load_state_dict(dict(state_dict), strict=True)


def save_checkpoint(
    path: str | os.PathLike,
    module_or_state_dict: torch.nn.Module | Mapping[str, torch.Tensor],
    config: Any = None,
) -> Path:
    """Atomically write weights (and ``config``, a dataclass or dict, as JSON metadata)."""
    state = module_or_state_dict
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    metadata = {CONFIG_KEY: json.dumps(_config_dict(config), sort_keys=True)}
    path = Path(path)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and the config dict written by :func:`save_checkpoint`."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ValueError(
            f"{path} is not a .safetensors checkpoint (use read_state_dict for foreign files)"
        )
    state = read_state_dict(path)
    with safe_open(str(path), framework="pt") as fh:
        raw = (fh.metadata() or {}).get(CONFIG_KEY)
    if raw is None:
        return state, {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the config in its metadata is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise ValueError(
            f"{path}: the config in its metadata must be a JSON object, "
            f"not a {type(config).__name__}"
        )
    return state, config


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read safetensors file {path}: {first}") from None


def torch_load_weights_only(path: Path, what: str = "a weights-only torch checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; any failure is one ``ValueError``
    naming ``path`` (without torch's advice to load the file unsafely)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on the pickle protocol
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(f"cannot read {path} as {what}: {_load_failure(err)}") from None


def _load_failure(err: Exception) -> str:
    text = str(err).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().splitlines()[0]
        return f"it holds objects other than tensors, which are never unpickled ({detail})"
    first = text.splitlines()[0] if text else type(err).__name__
    if "weights_only" in first:
        return "it holds objects other than tensors, which are never unpickled"
    return first


def _read_pickle(path: Path, key: str | None) -> dict[str, torch.Tensor]:
    obj = torch_load_weights_only(path)
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = ", ".join(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"{path} has no entry {key!r} (found: {found})")
        obj = obj[key]
    elif isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path} holds no tensors")
    return tensors


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if isinstance(config, Mapping):
        return dict(config)
    raise ValueError(
        f"config must be a dataclass instance, a dict or None, not {type(config).__name__}"
    )


def _listing(label: str, keys: list[str]) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return f"{len(keys)} {label}: {shown}{more}"
