"""Images in and out: an image-folder dataset, crops, the photos inside scikit-image, grids.

Images are float tensors (C, H, W) in [-1, 1] (the diffusion convention); ``to_pil``, ``save_image``
and ``save_grid`` map them back to 8-bit. Everything here uses Pillow and torch only;
``sample_photos`` and ``skimage_photo`` read the photo files shipped in the scikit-image wheel
(install ``diffrepro-core[demo]``) without importing scikit-image or touching the network.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# Colour photographs shipped in skimage/data (see specs/offline_assets.md §1.1); licences are
# public domain or CC0.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
)


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """An RGB image file as a (3, H, W) float tensor in [-1, 1].

    Every Pillow mode is converted by its own range: 8-bit modes (L, P, RGB, RGBA, CMYK, ...)
    through RGB, 16-bit greyscale (``I;16*``, and ``I`` as Pillow opens 16-bit PNGs) by
    65535, 32-bit float (``F``) as values in [0, 1]. Greyscale becomes three equal channels."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"image {path} is a folder, expected an image file")
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return _image_to_tensor(img, path)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None


def _image_to_tensor(img: Image.Image, path: Path) -> torch.Tensor:
    if img.width < 1 or img.height < 1:
        raise ValueError(f"image {path} is empty ({img.width}x{img.height})")
    if img.mode.startswith("I;16") or img.mode == "I":
        array = np.asarray(img).astype(np.float64)
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"image {path}: 32-bit integer pixels outside the 16-bit range")
        return _grey_to_rgb(array / 65535.0)
    if img.mode == "F":
        array = np.asarray(img).astype(np.float64)
        if not np.isfinite(array).all():
            raise ValueError(f"image {path} has non-finite (NaN or infinite) pixels")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(f"image {path}: float pixels must lie in [0, 1]")
        return _grey_to_rgb(array)
    return pil_to_tensor(img.convert("RGB"))


def _grey_to_rgb(unit: np.ndarray) -> torch.Tensor:
    """A (H, W) array in [0, 1] as a (3, H, W) float32 tensor in [-1, 1]."""
    grey = torch.from_numpy(unit * 2.0 - 1.0).float()
    return grey[None].expand(3, -1, -1).contiguous()


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    array = np.asarray(img, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous() / 127.5 - 1.0


def to_pil(image: torch.Tensor) -> Image.Image:
    """A (C, H, W) tensor in [-1, 1] (C = 1 or 3) as an 8-bit Pillow image."""
    quantised = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = quantised.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def resize_shorter(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (bicubic, Pillow) so that the shorter side is ``size``."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if (new[1], new[0]) == (h, w):
        return image
    return pil_to_tensor(to_pil(image).resize(new, Image.Resampling.BICUBIC))


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    _check_crop(h, w, size)
    top, left = (h - size) // 2, (w - size) // 2
    return image[..., top : top + size, left : left + size]


def random_crop(
    image: torch.Tensor, size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A uniformly placed ``size``×``size`` crop (torch RNG, so training seeds control it)."""
    h, w = image.shape[-2:]
    _check_crop(h, w, size)
    top = int(torch.randint(h - size + 1, (), generator=generator))
    left = int(torch.randint(w - size + 1, (), generator=generator))
    return image[..., top : top + size, left : left + size]


def _check_crop(h: int, w: int, size: int) -> None:
    if size > min(h, w):
        raise ValueError(f"cannot crop {size}x{size} from an image of {h}x{w}")


class ImageFolder(torch.utils.data.Dataset):
    """Every image under ``root`` (recursively), resized so its shorter side is ``size`` and
    cropped to ``size``×``size`` (``crop="center"`` or ``"random"``); ``size=None`` keeps
    images whole.
    """

    def __init__(
        self, root: str | os.PathLike, size: int | None = None, crop: str = "center"
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder not found: {root}")
        if crop not in ("center", "random"):
            raise ValueError(f"crop must be 'center' or 'random', got {crop!r}")
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
        self.size = size
        self.crop = crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_image(self.files[index])
        if self.size is None:
            return image
        image = resize_shorter(image, self.size)
        return (
            center_crop(image, self.size)
            if self.crop == "center"
            else random_crop(image, self.size)
        )


def sample_photos(size: int | None = None) -> list[torch.Tensor] | torch.Tensor:
    """The colour photos embedded in scikit-image, as float images in [-1, 1].

    ``size=None``: a list of (3, H, W) tensors at native resolution; otherwise a (N, 3, size, size)
    tensor of centre crops of the photos resized so their shorter side is ``size``.
    """
    photos = [skimage_photo(name) for name in SKIMAGE_PHOTOS]
    if size is None:
        return photos
    return torch.stack([center_crop(resize_shorter(p, size), size) for p in photos])


def skimage_photo(filename: str) -> torch.Tensor:
    """One image file of scikit-image's data folder (e.g. ``"camera.png"``; grey images become
    three equal channels) as a (3, H, W) tensor in [-1, 1]."""
    path = _skimage_data_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"scikit-image ships no image {filename!r} in {path.parent}")
    return load_image(path)


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the sample photos come from scikit-image: "
            "install it with `pip install diffrepro-core[demo]`"
        )
    return Path(spec.origin).parent / "data"


def make_grid(
    images: torch.Tensor | Sequence[torch.Tensor], nrow: int | None = None, padding: int = 2
) -> torch.Tensor:
    """Tile (N, C, H, W) images in [-1, 1] into one (C, H', W') image with ``nrow`` per row."""
    images = torch.stack(list(images)) if not isinstance(images, torch.Tensor) else images
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), -1.0)
    for i, image in enumerate(images.detach().float().cpu()):
        top, left = padding + (i // nrow) * (h + padding), padding + (i % nrow) * (w + padding)
        grid[:, top : top + h, left : left + w] = image
    return grid


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save one (C, H, W) image in [-1, 1] (C = 1 or 3) as an 8-bit PNG (atomically)."""
    from diffrepro.core.checkpoints import atomic_write

    path = Path(path)
    pil = to_pil(image)
    atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))
    return path


def save_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    path: str | os.PathLike,
    nrow: int | None = None,
    padding: int = 2,
) -> Path:
    """Save images in [-1, 1] as one PNG grid (atomically)."""
    from diffrepro.core.checkpoints import atomic_write

    path = Path(path)
    grid = to_pil(make_grid(images, nrow, padding))
    atomic_write(path, lambda tmp: grid.save(tmp, format="PNG"))
    return path
