import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.core import data
from diffrepro.core.data import (
    ImageFolder,
    center_crop,
    load_image,
    make_grid,
    random_crop,
    sample_photos,
    save_grid,
    save_image,
    skimage_photo,
)


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_reads_converts_and_crops(tmp_path: Path) -> None:
    rgb = np.arange(12 * 20 * 3, dtype=np.uint8).reshape(12, 20, 3)
    _write_png(tmp_path / "a.png", rgb)
    _write_png(tmp_path / "nested" / "b.png", np.full((10, 10), 255, dtype=np.uint8))  # grayscale
    (tmp_path / "notes.txt").write_text("not an image")
    whole = ImageFolder(tmp_path)
    assert len(whole) == 2
    a = whole[0]
    assert a.shape == (3, 12, 20)
    torch.testing.assert_close(a, torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)
    assert torch.equal(whole[1], torch.ones(3, 10, 10))
    cropped = ImageFolder(tmp_path, size=8)
    assert cropped[0].shape == (3, 8, 8) and cropped[1].shape == (3, 8, 8)


def test_crops() -> None:
    image = torch.arange(5 * 7.0).reshape(1, 5, 7)
    assert torch.equal(center_crop(image, 3), image[:, 1:4, 2:5])
    gen = torch.Generator().manual_seed(0)
    crops = {tuple(random_crop(image, 3, gen)[0, 0, :1].tolist()) for _ in range(40)}
    assert len(crops) > 3  # different positions are drawn
    with pytest.raises(ValueError, match="cannot crop 6x6"):
        center_crop(image, 6)


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        ImageFolder(tmp_path)[0]
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "none.png")


def test_grid_roundtrip_png(tmp_path: Path) -> None:
    images = torch.rand(5, 3, 4, 6) * 2 - 1
    grid = make_grid(images, nrow=3, padding=1)
    assert grid.shape == (3, 2 * 5 + 1, 3 * 7 + 1)
    assert torch.equal(grid[:, 6:10, 8:14], images[4])
    path = save_grid(images, tmp_path / "grid.png", nrow=3, padding=1)
    back = load_image(path)
    assert back.shape == grid.shape
    assert (back - grid).abs().max() <= 1 / 127.5 + 1e-6  # 8-bit quantisation only


def test_save_image_roundtrip_png(tmp_path: Path) -> None:
    image = torch.rand(3, 5, 7) * 2 - 1
    back = load_image(save_image(image, tmp_path / "sub" / "one.png"))
    assert back.shape == image.shape
    assert (back - image).abs().max() <= 1 / 127.5 + 1e-6  # 8-bit quantisation only
    grey = load_image(save_image(torch.full((1, 4, 4), 1.0), tmp_path / "grey.png"))
    assert torch.equal(grey, torch.ones(3, 4, 4))


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="needs the demo extra")
def test_skimage_photo_by_file_name() -> None:
    camera = skimage_photo("camera.png")  # a grey photo: three equal channels
    assert camera.shape == (3, 512, 512) and torch.equal(camera[0], camera[2])
    assert torch.equal(skimage_photo("astronaut.png"), sample_photos()[0])
    with pytest.raises(FileNotFoundError, match="no image 'nope.png'"):
        skimage_photo("nope.png")


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="needs the demo extra")
def test_sample_photos() -> None:
    photos = sample_photos()
    assert len(photos) == 6 and all(p.shape[0] == 3 for p in photos)
    assert photos[0].shape == (3, 512, 512)  # astronaut
    small = sample_photos(16)
    assert small.shape == (6, 3, 16, 16)
    assert small.min() >= -1 and small.max() <= 1 and small.std() > 0.1


def test_sample_photos_without_skimage_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        data.importlib.util, "find_spec", lambda n: None if n == "skimage" else real(n)
    )
    with pytest.raises(ModuleNotFoundError, match=r"diffrepro-core\[demo\]"):
        sample_photos()
