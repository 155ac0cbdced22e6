"""SDM's training data: which scikit-image photos train and which are held out, and batches of
random square crops (image files, folders and PNGs come from ``diffrepro.core.data``)."""

from __future__ import annotations

import torch

from diffrepro.core.data import random_crop, resize_shorter, skimage_photo

# files inside the scikit-image wheel (no download); the demo evaluates on the held-out ones
TRAIN_PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "rocket.jpg",
    "ihc.png",
    "retina.jpg",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)
HELD_OUT_PHOTOS = ("chelsea.png", "coins.png")


def photos(names: tuple[str, ...], short_side: int = 96) -> list[torch.Tensor]:
    """The named scikit-image photos, resized so the shorter side is ``short_side``."""
    return [resize_shorter(skimage_photo(name), short_side) for name in names]


def random_crops(
    images: list[torch.Tensor],
    count: int,
    size: int,
    generator: torch.Generator,
    *,
    flip: bool = True,
) -> torch.Tensor:
    """``count`` random (3, size, size) crops of randomly chosen images, optionally mirrored."""
    crops = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (), generator=generator))]
        crop = random_crop(image, size, generator)
        mirror = flip and bool(torch.rand((), generator=generator) < 0.5)
        crops.append(crop.flip(-1) if mirror else crop)
    return torch.stack(crops)
