"""Edit directions from sentence banks (spec §3.4).

A direction is ``mean(E(target sentences)) − mean(E(source sentences))`` where ``E`` is the text
encoder's full last hidden state (1, 77, D): token-position-wise, padding positions included. It
is added to the caption's embedding of the conditional branch only, scaled by a multiplier.

The paper generates ~1000 sentences per word with GPT-3. Here the banks come from user files
(one sentence per line) or, by default, from :data:`TEMPLATES` filled with the word (the
"fixed-template" option of the authors' demo). Directions are model-specific: one made with one
text encoder must not be used with another (the file records the model it was made with).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from diffrepro.core.checkpoints import read_state_dict, save_checkpoint
from diffrepro.core.models.stable_diffusion import StableDiffusion

TEMPLATES = (
    "a photo of a {}",
    "a picture of a {}",
    "a painting of a {}",
    "a drawing of a {}",
    "a cartoon of a {}",
    "an emoji of a {}",
    "a close-up photo of the {}",
    "a {} sitting",
    "the {} in a photo",
    "a small {}",
    "a big {}",
    "a cute {}",
)
TASK_WORDS = {
    "cat2dog": ("cat", "dog"),
    "dog2cat": ("dog", "cat"),
    "horse2zebra": ("horse", "zebra"),
    "zebra2horse": ("zebra", "horse"),
    "cat2cat_glasses": ("cat", "cat wearing glasses"),
}


@dataclass(frozen=True)
class Task:
    """An edit task: the source and target words (e.g. cat -> dog)."""

    name: str
    source: str
    target: str


def parse_task(name: str) -> Task:
    """A known task name, or ``SRC2TGT`` with words (underscores for spaces), e.g. ``cup2mug``."""
    if name in TASK_WORDS:
        return Task(name, *TASK_WORDS[name])
    match = re.fullmatch(r"([A-Za-z_]+)2([A-Za-z_]+)", name)
    if match is None:
        raise ValueError(
            f"unknown task {name!r}: use SRC2TGT (e.g. cat2dog) or one of {', '.join(TASK_WORDS)}"
        )
    src, tgt = (w.replace("_", " ") for w in match.groups())
    return Task(name, src, tgt)


def template_sentences(word: str, templates: tuple[str, ...] = TEMPLATES) -> list[str]:
    """The default bank: every template filled with ``word``."""
    return [t.format(word) for t in templates]


def read_sentences(path: str | os.PathLike) -> list[str]:
    """Non-empty, stripped lines of a text file (one sentence per line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sentence file not found: {path}")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise ValueError(f"sentence file {path} is not UTF-8 text") from err
    sentences = [line for line in lines if line]
    if not sentences:
        raise ValueError(f"sentence file {path} has no sentences")
    return sentences


def mean_embedding(sd: StableDiffusion, sentences: list[str], batch_size: int = 16) -> Tensor:
    """Mean over ``sentences`` of the text encoder's last hidden states, shape (1, L, D)."""
    if not sentences:
        raise ValueError("a sentence bank needs at least one sentence")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with torch.no_grad():
        embeds = [
            sd.encode_prompt(sentences[i : i + batch_size])
            for i in range(0, len(sentences), batch_size)
        ]
    return torch.cat(embeds).mean(0)[None]


def construct_direction(source_mean: Tensor, target_mean: Tensor) -> Tensor:
    """``target − source`` of two (1, L, D) mean embeddings (diffusers' construct_direction)."""
    if source_mean.shape != target_mean.shape:
        raise ValueError(
            f"source and target embeddings differ in shape: {tuple(source_mean.shape)} vs "
            f"{tuple(target_mean.shape)}"
        )
    return (target_mean.mean(0) - source_mean.mean(0)).unsqueeze(0)


def sentence_direction(
    sd: StableDiffusion, source: list[str], target: list[str], batch_size: int = 16
) -> Tensor:
    """The edit direction of two sentence banks."""
    return construct_direction(
        mean_embedding(sd, source, batch_size), mean_embedding(sd, target, batch_size)
    )


def word_swap_direction(sd: StableDiffusion, caption: str, task: Task) -> Tensor:
    """E(caption with the source word replaced) − E(caption): the word-swap baselines'."""
    swapped = swap_word(caption, task)
    with torch.no_grad():
        return sd.encode_prompt([swapped]) - sd.encode_prompt([caption])


def swap_word(caption: str, task: Task) -> str:
    """The caption with whole-word occurrences of the source word replaced by the target."""
    pattern = rf"\b{re.escape(task.source)}\b"
    if re.search(pattern, caption) is None:
        raise ValueError(f"the caption {caption!r} lacks the source word {task.source!r}")
    return re.sub(pattern, task.target, caption)


def save_direction(path: str | os.PathLike, direction: Tensor, info: dict) -> Path:
    """Write a direction as ``{"direction": (1, L, D)}`` safetensors with ``info`` as metadata."""
    return save_checkpoint(Path(path), {"direction": direction}, info)


def load_direction(path: str | os.PathLike) -> tuple[Tensor, dict]:
    """A direction written by :func:`save_direction` (or any file with one (1, L, D) tensor)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"direction file not found: {path}")
    state = read_state_dict(path)
    tensor = state.get("direction")
    if tensor is None and len(state) == 1:
        tensor = next(iter(state.values()))
    if tensor is None or tensor.dim() != 3 or tensor.shape[0] != 1:
        raise ValueError(f"{path} does not hold one (1, L, D) direction tensor")
    info: dict = {}
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as fh:
            info = json.loads((fh.metadata() or {}).get("config", "{}"))
    return tensor, info


def check_direction(direction: Tensor, context: Tensor, source: str = "direction") -> None:
    """A clear error when a direction does not fit the model's (B, L, D) text states."""
    if direction.shape[1:] != context.shape[1:]:
        raise ValueError(
            f"{source} has shape {tuple(direction.shape)}, but this model's text states are "
            f"(1, {context.shape[1]}, {context.shape[2]}): directions are model-specific"
        )
