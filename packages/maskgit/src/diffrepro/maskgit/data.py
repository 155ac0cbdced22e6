"""Training images with class labels, as float images in [0, 1] (the official pixel range).

- :func:`folder_dataset`: a folder whose sub-folders are the classes (sorted names → 0, 1, ...);
  images directly in the folder form one class.
- :func:`emoji_dataset`: the core's embedded OpenMoji renders with their coarse classes
  (``diffrepro.core.emoji``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from diffrepro.core.data import IMAGE_EXTENSIONS, center_crop, load_image, resize_shorter


def folder_dataset(root: str | os.PathLike, size: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(images (N, 3, size, size) in [0, 1], labels (N,), class names)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    groups = [(i, root / c) for i, c in enumerate(classes)] or [(0, root)]
    images, labels = [], []
    for label, folder in groups:
        for path in sorted(folder.rglob("*") if classes else folder.glob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                image = center_crop(resize_shorter(load_image(path), size), size)
                images.append((image + 1) / 2)
                labels.append(label)
    if not images:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
    return torch.stack(images), torch.tensor(labels), classes or [root.name]


def emoji_dataset(size: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor, list]:
    """The embedded emoji renders of ``split`` with their coarse class labels."""
    try:
        from diffrepro.core import emoji
    except ImportError as err:
        raise ValueError(
            "the emoji data needs diffrepro.core.emoji (the core zoo), which is not installed"
        ) from err
    x, _ = emoji.images(size, split)
    labels = torch.tensor([e.label for e in emoji.select(split)])
    return (x + 1) / 2, labels, list(emoji.COARSE_CLASSES)
