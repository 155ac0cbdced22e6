"""Learned-embedding files: every format the official code, diffusers and the A1111 web UI write.

==========  ==================  =============================================================
format      file                content
==========  ==================  =============================================================
safetensors learned_embeds      ``{token: (n, d)}``, metadata ``{"format": "pt"}`` (diffusers
            .safetensors        default)
bin         learned_embeds.bin  the same dict, ``torch.save`` (diffusers
                                ``--no_safe_serialization``)
official    embeddings.pt       ``{"string_to_token": {token: id tensor}, "string_to_param":
                                nn.ParameterDict({token: Parameter (n, d)})}`` (rinongal's
                                ``EmbeddingManager.save``)
a1111       <name>.pt           ``{"string_to_token": {"*": 265}, "string_to_param": {"*": (n,
                                d)}, "name", "step", "sd_checkpoint", "sd_checkpoint_name"}``
==========  ==================  =============================================================

Reading also accepts a raw tensor (``token=`` needed) and A1111's ``.safetensors`` (one key
``emb_params``; the token defaults to the file name). Pickles are read only with
``torch.load(weights_only=True)``; the official ``nn.ParameterDict`` is allowed through
``torch.serialization.safe_globals`` (a torch container class, no code from the file runs).
``token=`` overrides the name stored in a file, as in diffusers' ``load_textual_inversion``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from diffrepro.core.checkpoints import atomic_write

FORMATS = ("safetensors", "bin", "official", "a1111")
SUFFIXES = {"safetensors": ".safetensors", "bin": ".bin", "official": ".pt", "a1111": ".pt"}
DEFAULT_NAMES = {
    "safetensors": "learned_embeds.safetensors",
    "bin": "learned_embeds.bin",
    "official": "embeddings.pt",
    "a1111": "embedding.pt",
}
A1111_STAR_ID = 265  # the id of "*" in CLIP's vocabulary; A1111 writes this constant
A1111_SAFETENSORS_KEY = "emb_params"
_PICKLES = (".pt", ".pth", ".bin", ".ckpt")


def save_embeds(
    path: str | os.PathLike,
    token: str,
    rows: torch.Tensor,
    *,
    format: str = "safetensors",
    token_id: int | None = None,
    step: int = 0,
) -> Path:
    """Write one placeholder's rows (n, d) atomically in ``format``.

    ``token_id`` (the placeholder's first id) is stored by the official format only.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown embedding format {format!r} (known: {', '.join(FORMATS)})")
    path = Path(path)
    if path.suffix.lower() != SUFFIXES[format]:
        raise ValueError(f"a {format} embedding file must end in {SUFFIXES[format]}: {path}")
    rows = _as_rows(rows.detach().cpu().float().contiguous().clone(), f"embedding of {token!r}")
    if format == "safetensors":
        atomic_write(
            path, lambda tmp: save_file({token: rows}, str(tmp), metadata={"format": "pt"})
        )
        return path
    if format == "bin":
        obj: object = {token: rows}
    elif format == "official":
        if token_id is None:
            raise ValueError("the official format stores the placeholder's token id: give token_id")
        obj = {
            "string_to_token": {token: torch.tensor(token_id)},
            "string_to_param": nn.ParameterDict({token: nn.Parameter(rows)}),
        }
    else:
        obj = {
            "string_to_token": {"*": A1111_STAR_ID},
            "string_to_param": {"*": rows},
            "name": token,
            "step": step,
            "sd_checkpoint": None,
            "sd_checkpoint_name": None,
        }
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    return path


def read_embeds(path: str | os.PathLike, token: str | None = None) -> tuple[str, torch.Tensor]:
    """``(token, rows (n, d) float32)`` from any supported file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    obj = _read_object(path)
    name, rows = _interpret(obj, path, token)
    return name, _as_rows(rows, str(path))


def _read_object(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"cannot read safetensors file {path}: {err}") from None
    if suffix not in _PICKLES:
        raise ValueError(
            f"unsupported embedding file {path} (use .safetensors, {', '.join(_PICKLES)})"
        )
    try:
        with torch.serialization.safe_globals([nn.ParameterDict]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, ... for bad files
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        raise ValueError(f"cannot read {path} as a weights-only torch file: {first}") from None


def _interpret(obj: object, path: Path, token: str | None) -> tuple[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        if token is None:
            raise ValueError(f"{path} holds a bare tensor: give the token to register it under")
        return token, obj
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not an embedding")
    if "string_to_param" in obj:
        params = obj["string_to_param"]
        if isinstance(params, nn.ParameterDict):  # the official file: not a Mapping subclass
            params = dict(params.items())
        if not isinstance(params, Mapping) or len(params) != 1:
            count = len(params) if isinstance(params, Mapping) else type(params).__name__
            raise ValueError(f"{path}: string_to_param must hold one embedding, found {count}")
        ((key, rows),) = params.items()
        if "name" in obj:  # A1111: the name field names the token (diffusers reads it too)
            return token or str(obj["name"]), rows
        return token or str(key), rows
    if set(obj) == {A1111_SAFETENSORS_KEY}:
        return token or path.stem, obj[A1111_SAFETENSORS_KEY]
    if len(obj) == 1:
        ((key, rows),) = obj.items()
        return token or str(key), rows
    keys = ", ".join(map(str, list(obj)[:8]))
    raise ValueError(
        f"{path} is not a Textual Inversion embedding: expected one token key or "
        f"string_to_param, found keys {keys}"
    )


def _as_rows(rows: object, source: str) -> torch.Tensor:
    if not isinstance(rows, torch.Tensor):
        raise ValueError(f"{source}: the embedding is a {type(rows).__name__}, not a tensor")
    rows = rows.detach()
    if rows.ndim == 1:
        rows = rows[None]
    if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] < 1:
        raise ValueError(f"{source}: embedding must be (n_vectors, dim), got {tuple(rows.shape)}")
    if not rows.is_floating_point():
        raise ValueError(f"{source}: embedding has dtype {rows.dtype}, expected floating point")
    if not torch.isfinite(rows).all():
        raise ValueError(f"{source}: embedding holds non-finite values")
    return rows.float() if rows.dtype != torch.float32 else rows
