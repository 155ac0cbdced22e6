"""The core's built-in zoo entries."""

from __future__ import annotations

from diffrepro.core.zoo.ddpm import ddpm_entry
from diffrepro.core.zoo.judge import judge_entry
from diffrepro.core.zoo.registry import ZooEntry
from diffrepro.core.zoo.t2i import FOOD_CLASSES, T2IRecipe, t2i_entry
from diffrepro.core.zoo.vae import vae_entry


def builtin_entries() -> list[ZooEntry]:
    return [
        vae_entry(),
        t2i_entry(),
        t2i_entry("emoji-t2i-food", recipe=T2IRecipe(classes=FOOD_CLASSES)),
        judge_entry(),
        ddpm_entry("emoji-ddpm"),
        ddpm_entry("emoji-ddpm-cond", conditional=True),
    ]
