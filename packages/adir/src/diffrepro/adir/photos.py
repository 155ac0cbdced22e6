"""Out-of-domain test crops and a retrieval corpus of crops, from a handful of photos.

Every photo is resized so its shorter side is ``scale`` (bicubic); the test crop of a test photo
is its centre ``size``×``size`` crop. The corpus is every ``size``×``size`` crop on a ``stride``
grid of every photo (test photos included) whose box keeps at least ``margin`` pixels away from
the test boxes (so no corpus crop shares a pixel with a test crop). Nothing is random: the same
photos give the same crops in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from diffrepro.core.data import resize_shorter


@dataclass(frozen=True)
class PhotoCrops:
    test: torch.Tensor  # (N, 3, size, size)
    test_names: list[str]
    corpus: torch.Tensor  # (M, 3, size, size)
    corpus_sources: list[str]  # the photo each corpus crop comes from
    test_boxes: list[tuple[str, int, int]]  # (photo, top, left) of each test crop
    corpus_boxes: list[tuple[str, int, int]]


def photo_crops(
    photos: Sequence[tuple[str, torch.Tensor]],
    test_photos: Sequence[str],
    *,
    size: int = 32,
    scale: int = 96,
    stride: int = 8,
    margin: int = 8,
) -> PhotoCrops:
    """Centre crops of ``test_photos`` and the disjoint grid corpus of all ``photos``."""
    names = [name for name, _ in photos]
    missing = [n for n in test_photos if n not in names]
    if missing:
        raise ValueError(f"test photos {missing} are not among the photos {names}")
    resized = {name: resize_shorter(p, scale) for name, p in photos}
    test_boxes = [_centre_box(name, resized[name], size) for name in test_photos]
    corpus_boxes = [
        box
        for name in names
        for box in _grid(name, resized[name], size, stride)
        if not any(_near(box, t, size, margin) for t in test_boxes)
    ]
    if not corpus_boxes:
        raise ValueError("no corpus crop is disjoint from the test crops")

    def cut(boxes):
        return torch.stack([resized[n][:, y : y + size, x : x + size] for n, y, x in boxes])

    return PhotoCrops(
        cut(test_boxes),
        [f"{n} (centre)" for n in test_photos],
        cut(corpus_boxes),
        [n for n, _, _ in corpus_boxes],
        test_boxes,
        corpus_boxes,
    )


def _centre_box(name: str, image: torch.Tensor, size: int) -> tuple[str, int, int]:
    h, w = image.shape[-2:]
    return name, (h - size) // 2, (w - size) // 2


def _grid(name: str, image: torch.Tensor, size: int, stride: int):
    h, w = image.shape[-2:]
    rows, cols = range(0, h - size + 1, stride), range(0, w - size + 1, stride)
    return [(name, y, x) for y in rows for x in cols]


def _near(a, b, size: int, margin: int) -> bool:
    """Whether box ``a`` comes within ``margin`` pixels of box ``b`` (same photo only)."""
    return a[0] == b[0] and abs(a[1] - b[1]) < size + margin and abs(a[2] - b[2]) < size + margin


def boxes_overlap(a, b, size: int) -> bool:
    """Whether two ``size``×``size`` boxes (photo, top, left) share a pixel."""
    return _near(a, b, size, 0)
