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


def _resume_config(steps: int = 5):
    cfg = PRESETS["tiny"]
    train_cfg = dataclasses.replace(cfg.train, steps=steps, checkpoint_every=2, r1_interval=3)
    return dataclasses.replace(cfg, train=train_cfg)


def _weights(path):
    return load_checkpoint(path)[0]


def test_a_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    import pytest

    cfg, images = _resume_config(), smooth_images(8, 16)
    batches = lambda n, gen: images[torch.randperm(8, generator=gen)[:n]]  # noqa: E731
    whole = train(cfg, batches, tmp_path / "whole", seed=3, progress=False)

    calls = []

    def dies_at_step_4(n, gen):
        calls.append(n)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return batches(n, gen)

    with pytest.raises(KeyboardInterrupt):
        train(cfg, dies_at_step_4, tmp_path / "cut", seed=3, progress=False)
    assert (tmp_path / "cut" / "checkpoints" / "latest").read_text() == "step_0000002"
    torch.manual_seed(123)  # the process state must not matter
    resumed = train(cfg, batches, tmp_path / "cut", seed=3, progress=False)
    assert resumed.history == whole.history and len(resumed.history) == 5
    for name in ("generator_ema.safetensors", "checkpoints/step_0000005/model.safetensors"):
        a, b = _weights(tmp_path / "whole" / name), _weights(tmp_path / "cut" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    path = "checkpoints/step_0000005/train_state.pt"
    state = lambda run: torch.load(tmp_path / run / path, weights_only=True)  # noqa: E731
    for net in ("generator", "discriminator"):
        a, b = state("whole")["optimizer"][net]["state"], state("cut")["optimizer"][net]["state"]
        assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a), net


def test_resume_refuses_another_seed_or_config_and_no_resume_refuses_a_run(tmp_path):
    import pytest

    cfg, images = _resume_config(steps=2), smooth_images(8, 16)
    batches = lambda n, gen: images[:n]  # noqa: E731
    train(cfg, batches, tmp_path, seed=0, progress=False)
    before = _weights(tmp_path / "generator_ema.safetensors")
    with pytest.raises(ValueError, match="another config or seed"):
        train(cfg, batches, tmp_path, seed=1, progress=False)
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=1e-4))
    with pytest.raises(ValueError, match="another config or seed"):
        train(other, batches, tmp_path, seed=0, progress=False)
    with pytest.raises(ValueError, match="--no-resume"):
        train(cfg, batches, tmp_path, seed=0, progress=False, resume=False)
    after = _weights(tmp_path / "generator_ema.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing lost
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=3))
    assert len(train(longer, batches, tmp_path, seed=0, progress=False).history) == 3
