"""Images in [-1, 1]: files, folders, the scikit-image photos, and random square crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# photos inside the scikit-image wheel (no download); the demo evaluates on the held-out ones
TRAIN_PHOTOS = (
    "astronaut",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "retina",
    "camera",
    "brick",
    "grass",
    "gravel",
)
HELD_OUT_PHOTOS = ("chelsea", "coins")


def load_image(path: str | Path) -> torch.Tensor:
    """An RGB image file as a (3, H, W) float tensor in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.float32)
    except OSError as err:
        raise ValueError(f"cannot read {path} as an image: {err}") from None
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write a (3, H, W) tensor in [-1, 1] as an 8-bit PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (
        ((image.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    )
    Image.fromarray(array).save(path)
    return path


def load_mask(path: str | Path) -> torch.Tensor:
    """A mask image (white = known, black = hole; MAT's convention) as a (1, H, W) {0, 1} tensor."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask not found: {path}")
    with Image.open(path) as image:
        array = np.asarray(image.convert("L"), dtype=np.float32)
    return torch.from_numpy((array >= 128).astype(np.float32))[None]


def image_folder(folder: str | Path) -> list[torch.Tensor]:
    """Every image under ``folder`` (recursively), each (3, H, W) in [-1, 1]."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {folder}")
    return [load_image(p) for p in files]


def sample_photos(
    names: tuple[str, ...] = TRAIN_PHOTOS, short_side: int = 96
) -> list[torch.Tensor]:
    """scikit-image's bundled photos (no download), resized to ``short_side``, in [-1, 1]."""
    from skimage import data

    photos = []
    for name in names:
        array = getattr(data, name)()
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        image = Image.fromarray(array[..., :3].astype(np.uint8))
        scale = short_side / min(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.BICUBIC
        )
        photos.append(
            torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0
        )
    return photos


def random_crops(
    images: list[torch.Tensor],
    count: int,
    size: int,
    rng: np.random.Generator,
    *,
    flip: bool = True,
) -> torch.Tensor:
    """``count`` random (3, size, size) crops from random images, optionally mirrored."""
    crops = []
    for _ in range(count):
        image = images[int(rng.integers(len(images)))]
        _, height, width = image.shape
        if min(height, width) < size:
            raise ValueError(f"an image of {height}×{width} is smaller than the crop size {size}")
        top, left = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
        crop = image[:, top : top + size, left : left + size]
        crops.append(crop.flip(-1) if flip and rng.random() < 0.5 else crop)
    return torch.stack(crops)
