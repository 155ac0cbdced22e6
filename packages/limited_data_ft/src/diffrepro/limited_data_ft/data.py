"""Target images: a user's folder, or a few-shot emoji target for the demo.

Emoji targets (32 px, on white, from the core's OpenMoji renders): the held-out split of the
emoji set (never seen by the zoo's DDPMs) restricted to one coarse class, optionally in a new
style (``invert``: colours inverted, so a black background the base model never saw; ``grey``:
greyscale). The first ``shots`` images (in a seeded order) are the training set, the others
the held-out reference set of the same domain (see ``reserve``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from diffrepro.core.data import ImageFolder

STYLES = ("none", "invert", "grey")


def load_folder(root: str | os.PathLike, size: int, channels: int = 3) -> torch.Tensor:
    """Every image under ``root``, shorter side resized to ``size`` and centre-cropped."""
    data = ImageFolder(root, size)
    images = torch.stack([data[i] for i in range(len(data))])
    if channels == 1:
        images = images.mean(dim=1, keepdim=True)
    elif channels != 3:
        raise ValueError(f"the base model takes {channels} channels; only 1 or 3 are supported")
    return images


def apply_style(images: torch.Tensor, style: str) -> torch.Tensor:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if style == "invert":
        return -images
    if style == "grey":
        return images.mean(dim=1, keepdim=True).expand_as(images).clone()
    return images


@dataclass(frozen=True)
class Target:
    train: torch.Tensor
    reference: torch.Tensor
    train_names: tuple[str, ...]
    label: int


def emoji_target(
    coarse: str | None,
    shots: int,
    *,
    style: str = "none",
    size: int = 32,
    seed: int = 0,
    reserve: int | None = None,
) -> Target:
    """``shots`` training images of held-out emoji (of ``coarse`` class, all when None); the
    reference set is every image after the first ``reserve`` (default ``shots``), so targets
    with different shot counts can share one reference set."""
    from diffrepro.core import emoji

    items = emoji.select("heldout")
    rgb, _ = emoji.images(size, "heldout")
    label = -1
    if coarse is not None:
        if coarse not in emoji.COARSE_CLASSES:
            raise ValueError(f"unknown coarse class {coarse!r} (have {emoji.COARSE_CLASSES})")
        label = emoji.COARSE_CLASSES.index(coarse)
        keep = [i for i, e in enumerate(items) if e.label == label]
        items, rgb = [items[i] for i in keep], rgb[keep]
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))
    reserve = shots if reserve is None else reserve
    if not 1 <= shots <= reserve < len(items) - 1:
        raise ValueError(f"{shots} shots ({reserve} reserved) do not fit {len(items)} images")
    rgb = apply_style(rgb[order], style)
    names = tuple(items[int(i)].name for i in order[:shots])
    return Target(rgb[:shots], rgb[reserve:], names, label)
