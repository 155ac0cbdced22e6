"""A folder of videos for training on real data.

Every folder under ``root`` that holds image files is one video (frames in natural name order,
e.g. ``frame00001.png``: the official CLEVRER / DIGAN layout ``<root>/<class>/<video>/``). Video
files are read too: GIFs with Pillow, other containers (.mp4, .avi, ...) with PyAV when it is
installed (``pip install av``); without it a clear error says so. Each clip is the first
``frames`` frames, centre-cropped to a square and resized (bilinear) to ``size``, in [-1, 1].
Shorter videos are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence
from torch import Tensor

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _square(image: Image.Image, size: int) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return (
        image.convert("RGB")
        .crop((left, top, left + side, top + side))
        .resize((size, size), Image.BILINEAR)
    )


def _to_tensor(images: list[Image.Image]) -> Tensor:
    array = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1


def _decode_with_av(path: Path, frames: int, size: int) -> list[Image.Image]:
    try:
        import av
    except ImportError:
        raise ValueError(
            f"cannot read {path.name}: decoding {path.suffix} videos needs PyAV "
            "(pip install av), or extract the frames into a folder"
        ) from None
    images = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            images.append(_square(frame.to_image(), size))
            if len(images) == frames:
                break
    return images


class VideoFolder(torch.utils.data.Dataset):
    """Clips as dicts ``{"frames": (F, 3, size, size)}`` from frame folders and video files."""

    def __init__(self, root: str | Path, *, size: int, frames: int) -> None:
        self.root, self.size, self.frames = Path(root), size, frames
        if not self.root.is_dir():
            raise FileNotFoundError(f"video folder not found: {self.root}")
        self.videos = [v for v in self._find_videos() if self._length(v) >= frames]
        if not self.videos:
            raise ValueError(f"no video with at least {frames} frames under {self.root}")

    def _find_videos(self) -> list[Path]:
        folders = {p.parent for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
        files = [p for p in self.root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES | {".gif"}]
        return sorted(folders | set(files))

    def _length(self, video: Path) -> int:
        if video.is_dir():
            return len(self._frame_files(video))
        if video.suffix.lower() == ".gif":
            with Image.open(video) as image:
                return getattr(image, "n_frames", 1)
        return self.frames  # containers: decoded lazily, checked when read

    def _frame_files(self, folder: Path) -> list[Path]:
        return sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
        )

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        video = self.videos[index]
        if video.is_dir():
            images = [
                _square(Image.open(p), self.size) for p in self._frame_files(video)[: self.frames]
            ]
        elif video.suffix.lower() == ".gif":
            with Image.open(video) as gif:
                images = [
                    _square(f.copy(), self.size)
                    for _, f in zip(range(self.frames), ImageSequence.Iterator(gif))
                ]
        else:
            images = _decode_with_av(video, self.frames, self.size)
        if len(images) < self.frames:
            raise ValueError(
                f"{video} has {len(images)} frames, fewer than the {self.frames} a clip needs"
            )
        return {"frames": _to_tensor(images)}


def export_frame_folders(clips: torch.utils.data.Dataset, root: str | Path, count: int) -> Path:
    """Write ``count`` clips as ``<root>/video<i>/frame<k>.png`` (the layout VideoFolder reads)."""
    root = Path(root)
    for i in range(count):
        folder = root / f"video{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        frames = ((clips[i]["frames"].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        for k, frame in enumerate(frames):
            Image.fromarray(frame.permute(1, 2, 0).numpy()).save(folder / f"frame{k:05d}.png")
    return root
