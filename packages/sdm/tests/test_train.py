import dataclasses

import numpy as np
import torch

from diffrepro.core.checkpoints import load_checkpoint
from diffrepro.sdm.config import PRESETS
from diffrepro.sdm.train import train


def smooth_images(count: int, size: int) -> torch.Tensor:
    """Deterministic smooth colour gradients (easy to inpaint)."""
    ramp = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    phases = torch.linspace(0, 3, count)
    return torch.stack(
        [torch.stack([torch.sin(xx * 2 + p), torch.cos(yy * 2 - p), xx * yy]) * 0.8 for p in phases]
    )


def test_tiny_training_lowers_the_loss_and_writes_a_checkpoint(tmp_path):
    cfg = PRESETS["tiny"]
    cfg = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, steps=40, checkpoint_every=20)
    )
    images = smooth_images(8, 16)
    batches = lambda n, gen: images[torch.randperm(8, generator=gen)[:n]]  # noqa: E731
    result = train(cfg, batches, tmp_path, seed=0, progress=False)
    first = np.mean([h["pcp"] + h["nll"] * cfg.train.nll_weight for h in result.history[:5]])
    last = np.mean([h["pcp"] + h["nll"] * cfg.train.nll_weight for h in result.history[-5:]])
    assert last < first
    nll_first = np.mean([h["nll"] for h in result.history[:5]])
    assert np.mean([h["nll"] for h in result.history[-5:]]) < nll_first
    weights, config = load_checkpoint(tmp_path / "generator_ema.safetensors")
    assert config["network"]["resolution"] == 16 and "conv_in.weight" in weights
    assert (tmp_path / "config.json").is_file() and any((tmp_path / "tensorboard").iterdir())
