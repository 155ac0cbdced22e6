"""Edit tasks: a source image, its object mask, a source and a target prompt.

The default set pairs held-out emoji with the emoji whose name differs in one word ("red apple"
-> "green apple"): a word-swap edit whose target the judge can name. A task file (JSON, or TOML
on Python >= 3.11) lists tasks, each either an emoji pair::

    {"source_emoji": "dog face", "target_emoji": "cat face"}

or an image of your own (prompts required; the mask and the judge's target are optional)::

    {"image": "cat.png", "source_prompt": "a cat", "target_prompt": "a dog",
     "mask": "cat_mask.png", "target_emoji": "dog face"}

as a top-level list or under ``"tasks"`` (TOML: ``[[tasks]]``). Relative paths are relative to
the task file. An image's alpha channel is its mask when no mask file is given. Every problem is
one error naming the file, the task and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from diffrepro.core import emoji

TEMPLATE = "an emoji of a {}"
T2I_CLASSES = ("face", "animal", "food", "plant", "vehicle")  # emoji-t2i's training classes
IMAGE_FIELDS = {"name", "image", "source_prompt", "target_prompt", "mask", "target_emoji"}
EMOJI_FIELDS = {"name", "source_emoji", "target_emoji", "source_prompt", "target_prompt"}


@dataclass(frozen=True)
class EditTask:
    name: str
    image: Tensor  # (1, 3, S, S) in [-1, 1] on white
    mask: Tensor | None  # (1, 1, S, S) in [0, 1]: the object to edit
    source: str
    target: str
    target_index: int | None  # the judge's index of the target emoji (None: not judged)

    def key(self) -> str:
        """A digest of everything that defines the task (for the cell cache)."""
        h = hashlib.sha256(f"{self.name}|{self.source}|{self.target}|{self.target_index}".encode())
        h.update(self.image.detach().float().numpy().tobytes())
        if self.mask is not None:
            h.update(self.mask.detach().float().numpy().tobytes())
        return h.hexdigest()[:16]


def one_word_pairs(count: int) -> list[tuple[emoji.Emoji, emoji.Emoji]]:
    """The first ``count`` held-out emoji (code-point order) of two or more words, of a class the
    zoo's text-to-image model was trained on, each with the first training-split emoji of the
    same class whose name differs from it in one word."""
    train = emoji.select("train")
    pairs = []
    for source in emoji.select("heldout"):
        words = source.name.split()
        if len(words) < 2 or source.coarse not in T2I_CLASSES:
            continue
        for other in (e for e in train if e.coarse == source.coarse):
            theirs = other.name.split()
            if len(theirs) == len(words) and sum(a != b for a, b in zip(words, theirs)) == 1:
                pairs.append((source, other))
                break
        if len(pairs) == count:
            break
    return pairs


def emoji_task(source: emoji.Emoji, target: emoji.Emoji, size: int, **prompts: str) -> EditTask:
    rgba = np.asarray(emoji.render(source, size), dtype=np.float32) / 255.0
    rgb, alpha = _on_white(torch.from_numpy(rgba).permute(2, 0, 1)[None])
    return EditTask(
        name=prompts.get("name") or f"{source.name} -> {target.name}",
        image=rgb,
        mask=alpha,
        source=prompts.get("source_prompt") or TEMPLATE.format(source.name),
        target=prompts.get("target_prompt") or TEMPLATE.format(target.name),
        target_index=target.index,
    )


def default_tasks(count: int, size: int) -> list[EditTask]:
    return [emoji_task(s, t, size) for s, t in one_word_pairs(count)]


def read_tasks(path: Path, size: int) -> list[EditTask]:
    """The tasks of a JSON / TOML task file (see the module docstring)."""
    entries = _entries(path)
    if not entries:
        raise ValueError(f"task file {path} lists no tasks")
    return [_task(path, i, entry, size) for i, entry in enumerate(entries)]


def _entries(path: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"task file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"task file {path} is not UTF-8 text") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise ValueError(f"task file {path}: TOML needs Python >= 3.11, use JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"task file {path} is not valid TOML: {err}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"task file {path} is not valid JSON: {err}") from None
    if isinstance(data, dict):
        data = data.get("tasks")
    if not isinstance(data, list):
        raise ValueError(f"task file {path} must hold a list of tasks (or a 'tasks' list)")
    return data


def _task(path: Path, i: int, entry, size: int) -> EditTask:
    where = f"task file {path}, task {i + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a table of fields, got {type(entry).__name__}")
    for field, value in entry.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {field!r} must be a non-empty string")
    if "source_emoji" in entry:
        _fields(where, entry, EMOJI_FIELDS, ("source_emoji", "target_emoji"))
        source, target = (_emoji(where, entry, f) for f in ("source_emoji", "target_emoji"))
        rest = {k: entry[k] for k in ("name", "source_prompt", "target_prompt") if k in entry}
        return emoji_task(source, target, size, **rest)
    _fields(where, entry, IMAGE_FIELDS, ("image", "source_prompt", "target_prompt"))
    rgb, alpha = _image(where, path.parent / entry["image"], "image", size)
    if "mask" in entry:
        alpha = _image(where, path.parent / entry["mask"], "mask", size)[0][:, :1] * 0.5 + 0.5
    target = _emoji(where, entry, "target_emoji") if "target_emoji" in entry else None
    return EditTask(
        name=entry.get("name", Path(entry["image"]).stem),
        image=rgb,
        mask=alpha,
        source=entry["source_prompt"],
        target=entry["target_prompt"],
        target_index=None if target is None else target.index,
    )


def _fields(where: str, entry: dict, allowed: set[str], required: tuple[str, ...]) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (allowed: {sorted(allowed)})")
    missing = [f for f in required if f not in entry]
    if missing:
        raise ValueError(f"{where}: missing field {missing[0]!r}")


def _emoji(where: str, entry: dict, field: str) -> emoji.Emoji:
    try:
        return emoji.find(entry[field])
    except ValueError:
        raise ValueError(f"{where}: {field} {entry[field]!r} is not an emoji name") from None


def _image(where: str, file: Path, field: str, size: int) -> tuple[Tensor, Tensor | None]:
    """(RGB on white in [-1, 1], alpha or None) of an image file, centre-cropped and resized."""
    if not file.is_file():
        raise FileNotFoundError(f"{where}: {field} file not found: {file}")
    try:
        with Image.open(file) as img:
            img.load()
            has_alpha = "A" in img.getbands()
            img = img.convert("RGBA")
    except (OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"{where}: {field} {file} is not a readable image ({err})") from None
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    rgba = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    rgb, alpha = _on_white(rgba)
    return rgb, alpha if has_alpha else None


def _on_white(rgba: Tensor) -> tuple[Tensor, Tensor]:
    alpha = rgba[:, 3:]
    return (rgba[:, :3] * alpha + (1 - alpha)) * 2 - 1, alpha


def swapped_words(source: str, target: str) -> tuple[str, str]:
    """The words that differ between two prompts, after their common first and last words:
    ("an emoji of a dog face", "an emoji of a cat face") -> ("dog", "cat")."""
    a, b = source.split(), target.split()
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[len(a) - 1 - end] == b[len(b) - 1 - end]:
        end += 1
    old, new = " ".join(a[start : len(a) - end]), " ".join(b[start : len(b) - end])
    if not old or not new:
        raise ValueError(f"the prompts {source!r} and {target!r} do not swap a word")
    return old, new
