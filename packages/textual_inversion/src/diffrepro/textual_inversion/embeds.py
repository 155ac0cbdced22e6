"""Load learned embeddings into a Stable Diffusion bundle, and save a bundle's placeholder."""

from __future__ import annotations

import os
from pathlib import Path

from diffrepro.core.models.stable_diffusion import StableDiffusion

from .formats import read_embeds, save_embeds
from .placeholders import Placeholder, add_placeholder, get_rows, token_table


def load_embeds(
    sd: StableDiffusion, path: str | os.PathLike, *, token: str | None = None
) -> Placeholder:
    """Register the embedding in ``path`` (any format of :mod:`.formats`) as a new placeholder
    of ``sd`` (``token`` overrides the stored name); the bundle is unchanged on error."""
    name, rows = read_embeds(path, token)
    width = token_table(sd.text_encoder).shape[1]
    if rows.shape[1] != width:
        raise ValueError(
            f"{path}: embedding width {rows.shape[1]} does not fit this text encoder ({width}); "
            "embeddings only transfer between models with the same text encoder"
        )
    try:
        return add_placeholder(
            sd.tokenizer, sd.text_encoder, name, num_vectors=rows.shape[0], rows=rows
        )
    except ValueError as err:
        raise ValueError(f"{path}: cannot register {name!r}: {err} (pass another token)") from None


def save_placeholder(
    sd: StableDiffusion,
    placeholder: Placeholder,
    path: str | os.PathLike,
    *,
    format: str = "safetensors",
    step: int = 0,
) -> Path:
    """Write ``placeholder``'s current rows from ``sd``'s text encoder."""
    rows = get_rows(sd.text_encoder, placeholder)
    return save_embeds(
        path, placeholder.token, rows, format=format, token_id=placeholder.ids[0], step=step
    )
