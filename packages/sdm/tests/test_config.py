import dataclasses

import pytest

from diffrepro.core.config import apply_overrides, config_from_dict, config_to_dict
from diffrepro.sdm.config import PRESETS, SDMConfig
from diffrepro.sdm.masks import MaskConfig


def test_presets_round_trip_and_accept_nested_overrides():
    for cfg in PRESETS.values():
        assert config_from_dict(SDMConfig, config_to_dict(cfg)) == cfg
    cfg = apply_overrides(PRESETS["tiny"], ["decode.schedule=cosine", "train.betas=0,0.9"])
    assert cfg.decode.schedule == "cosine" and cfg.train.betas == (0.0, 0.9)
    paper = PRESETS["paper"]
    assert (paper.train.adv_weight, paper.train.perceptual_weight, paper.train.nll_weight) == (
        1,
        2,
        1e-4,
    )
    assert paper.train.r1_gamma == 10 and paper.network.attention_resolutions == (32, 16)


def test_inconsistent_sizes_are_rejected():
    with pytest.raises(ValueError, match="must agree"):
        dataclasses.replace(PRESETS["tiny"], masks=MaskConfig(size=32))
    with pytest.raises(ValueError, match="unroll"):
        apply_overrides(PRESETS["tiny"], ["train.unroll=9"])
