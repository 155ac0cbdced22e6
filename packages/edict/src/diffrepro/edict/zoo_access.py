"""The demo's base model, judge and images, from the core zoo and the core emoji data.

Everything the demo takes from the zoo goes through here (one place to adapt if the zoo's API
moves). A model that is not built yet is a one-line error naming the command that builds it
(``uv run diffrepro zoo build emoji-t2i emoji-judge``): the demo never starts a zoo training.
"""

from __future__ import annotations

import torch

T2I, JUDGE = "emoji-t2i", "emoji-judge"
CAPTION_TEMPLATE = "an emoji of a {}"


def _modules():
    from diffrepro.core import emoji, zoo

    return zoo, emoji


def base_model(device: str = "cpu", dtype: torch.dtype = torch.float64):
    """The zoo's Stable Diffusion-layout emoji text-to-image model (built on first use)."""
    zoo, _ = _modules()
    return zoo.load(T2I, device="cpu").to(device=device, dtype=dtype)


def judge(device: str = "cpu"):
    zoo, _ = _modules()
    return zoo.load(JUDGE, device=device).eval()


def emoji_images(names: list[str], size: int) -> tuple[torch.Tensor, list[str], list[int], list]:
    """(images (N, 3, size, size) in [-1, 1] on white, captions, judge indices, held-out flags)."""
    _, emoji = _modules()
    items = [emoji.find(name) for name in names]
    rgb, _ = emoji.images(size, "all")  # in emoji_set() order: row k is the emoji of index k
    images = torch.stack([rgb[item.index] for item in items])
    captions = [item.caption(CAPTION_TEMPLATE) for item in items]
    return images, captions, [item.index for item in items], [item.heldout for item in items]


def heldout_names(limit: int) -> list[str]:
    """The first ``limit`` held-out emoji names (never seen by the text-to-image model)."""
    _, emoji = _modules()
    return [item.name for item in emoji.select("heldout")[:limit]]
