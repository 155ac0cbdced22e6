"""The zoo entry ``sdm-emoji``: registered by entry point, built and opened like any zoo model."""

import dataclasses

import torch

from diffrepro.core import zoo
from diffrepro.sdm import data
from diffrepro.sdm.config import PRESETS
from diffrepro.sdm.demo import quick_config
from diffrepro.sdm.emoji_model import NAME, WEIGHTS, history


def test_entry_is_registered_with_the_emoji_preset():
    entry = zoo.get(NAME)
    assert entry.config == PRESETS["emoji"] and entry.recipe.split == "train"
    assert entry.config.resolution == 32 and entry.config.train.adv_weight > 0


def test_a_tiny_build_trains_saves_and_opens(tmp_path, monkeypatch):
    real = data.emoji_images
    monkeypatch.setattr(data, "emoji_images", lambda size, split: real(size, split, limit=6))
    tiny = dataclasses.replace(zoo.get(NAME), name="tiny-sdm-emoji", config=quick_config())
    zoo.register(tiny, replace=True)
    try:
        generator = zoo.load(tiny, root=tmp_path)
        folder = zoo.path(tiny, build=False, root=tmp_path)
    finally:
        zoo.unregister(tiny.name)
    assert generator.cfg == quick_config().network and not generator.training
    assert (folder / WEIGHTS).is_file() and len(history(folder)) == quick_config().train.steps
    assert not (folder / "train" / "checkpoints").exists()
    x = torch.zeros(1, 3, 16, 16)
    mask = torch.ones(1, 1, 16, 16)
    mean, sigma = generator(x, mask, mask, 1 - mask, torch.zeros(1))
    assert bool(torch.isfinite(mean).all()) and bool(((sigma > 0) & (sigma <= 1)).all())
