"""Inpainting problems for ``diffrepro compare restoration``: held-out emoji under fixed masks.

Each problem is one held-out emoji (the first of each coarse class in turn, faces, animals,
food, plants, vehicles, people, objects, symbols, in code-point order; rendered on white at
the base model's size) under one mask kind, with measurement noise of level ``sigma`` drawn
once from a seed derived from the problem's name, so every method and seed sees the same
measurement:

- ``box``: a centred square hole of half the image side (a quarter of the pixels unknown);
- ``pixels``: 70 % of the pixels unknown, chosen at random (seeded by the problem's name);
- ``half``: the right half unknown.

The corpus a method may retrieve from or adapt on is the training split, which never holds a
held-out emoji.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import torch
from torch import Tensor

from diffrepro.core import emoji
from diffrepro.core.compare.restoring import InpaintingProblem

MASKS = ("box", "pixels", "half")
MISSING_PIXELS = 0.7
CLASS_ORDER = ("face", "animal", "food", "plant", "vehicle", "person", "object", "symbol")


@dataclass(frozen=True)
class RestorationTask:
    name: str
    image: Tensor  # (1, 3, S, S) in [-1, 1]: the ground truth, never shown to a method
    problem: InpaintingProblem

    def key(self) -> str:
        """A digest of everything that defines the task (for the cell cache)."""
        h = hashlib.sha256(f"{self.name}|{self.problem.sigma}".encode())
        for tensor in (self.image, self.problem.mask, self.problem.measurement):
            h.update(tensor.detach().float().contiguous().numpy().tobytes())
        h.update(str(tuple(self.problem.corpus.shape)).encode())
        return h.hexdigest()[:16]


def make_mask(kind: str, size: int, generator: torch.Generator) -> Tensor:
    """(1, 1, size, size): 1 = known, 0 = hole."""
    mask = torch.ones(1, 1, size, size)
    if kind == "box":
        lo, hi = size // 4, size // 4 + size // 2
        mask[..., lo:hi, lo:hi] = 0
    elif kind == "pixels":
        mask = (torch.rand(1, 1, size, size, generator=generator) >= MISSING_PIXELS).float()
    elif kind == "half":
        mask[..., size // 2 :] = 0
    else:
        raise ValueError(f"unknown mask kind {kind!r} (known: {', '.join(MASKS)})")
    return mask


def restoration_task(
    item: emoji.Emoji, image: Tensor, kind: str, sigma: float, corpus: Tensor
) -> RestorationTask:
    name = f"{item.name} / {kind}"
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    mask = make_mask(kind, image.shape[-1], generator)
    noise = torch.randn(image.shape, generator=generator)
    measurement = mask * (image + sigma * noise)
    problem = InpaintingProblem(measurement=measurement, mask=mask, sigma=sigma, corpus=corpus)
    return RestorationTask(name=name, image=image, problem=problem)


def default_tasks(count: int, size: int, masks: list[str], sigma: float) -> list[RestorationTask]:
    """The first ``count`` held-out emoji under each mask kind; the corpus is the train split."""
    if not 1 <= count <= len(emoji.select("heldout")):
        raise ValueError(f"--count must lie in [1, {len(emoji.select('heldout'))}], got {count}")
    if not sigma >= 0 or sigma != sigma:
        raise ValueError(f"--sigma must be >= 0, got {sigma}")
    heldout, _ = emoji.images(size, "heldout")
    corpus, _ = emoji.images(size, "train")
    order = {e.index: i for i, e in enumerate(emoji.select("heldout"))}
    return [
        restoration_task(item, heldout[order[item.index]][None], kind, sigma, corpus)
        for item in class_by_class(count)
        for kind in masks
    ]


def class_by_class(count: int) -> list[emoji.Emoji]:
    """``count`` held-out emoji: the first of each class in :data:`CLASS_ORDER`, then the next."""
    queues = {c: [e for e in emoji.select("heldout") if e.coarse == c] for c in CLASS_ORDER}
    picked: list[emoji.Emoji] = []
    while len(picked) < count:
        for queue in queues.values():
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked
