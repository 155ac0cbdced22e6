"""A tiny training run lowers both generators' losses; checkpoints carry the config back."""

import dataclasses

import pytest
import torch

from diffrepro.vidm.config import preset
from diffrepro.vidm.synthetic import SyntheticConfig, SyntheticSprites
from diffrepro.vidm.training import build_network, load_generator, stage_loss, train_stage

PHOTOS = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1]


def fixed_loss(cfg, stage, model, batch):
    loss_fn = stage_loss(cfg, stage)
    with torch.no_grad():
        return float(
            sum(loss_fn(model, batch, torch.Generator().manual_seed(s)) for s in range(4)) / 4
        )


@pytest.mark.parametrize("stage", ["content", "motion"])
def test_a_tiny_training_run_lowers_the_loss(stage, tmp_path):
    cfg = preset("tiny")
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(
            cfg.train, steps=30, lr=3e-3, ema_decay=None, checkpoint_every=30
        ),
    )
    data = SyntheticSprites(
        SyntheticConfig(size=8, frames=4, num_clips=8, sprite_size=(2, 3)), PHOTOS
    )
    batch = torch.utils.data.default_collate([data[i] for i in range(8)])
    torch.manual_seed(0)
    before = fixed_loss(cfg, stage, build_network(cfg, stage), batch)
    model, result = train_stage(cfg, stage, tmp_path, dataset=data)
    after = fixed_loss(cfg, stage, model, batch)
    assert result.step == 30
    assert after < 0.8 * before
    loaded, loaded_cfg = load_generator(tmp_path, stage)
    assert loaded_cfg == cfg
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values())
    )


def test_loading_reports_missing_checkpoints_and_bad_stages(tmp_path):
    with pytest.raises(FileNotFoundError, match="no motion checkpoint"):
        load_generator(tmp_path, "motion")
    with pytest.raises(ValueError, match="unknown stage"):
        build_network(preset("tiny"), "audio")
