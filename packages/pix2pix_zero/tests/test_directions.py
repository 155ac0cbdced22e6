"""Edit directions (spec §3.4, §6.7) and the pipeline's switches (Tables 1-2)."""

import dataclasses

import pytest
import torch

from diffrepro.pix2pix_zero.config import PRESETS, ablation_config, method_config
from diffrepro.pix2pix_zero.directions import (
    construct_direction,
    load_direction,
    mean_embedding,
    parse_task,
    save_direction,
    sentence_direction,
    swap_word,
    template_sentences,
)
from diffrepro.pix2pix_zero.pipeline import make_direction, sdedit, translate

SRC = ["a photo of a cat", "a cat sitting", "the cat"]
TGT = ["a photo of a dog", "a dog sitting"]


def test_identical_banks_give_a_zero_direction(sd64):
    d = sentence_direction(sd64, SRC, list(SRC))
    assert d.shape == (1, 77, 32) and torch.equal(d, torch.zeros_like(d))


def test_direction_is_target_mean_minus_source_mean(sd64):
    each = lambda bank: torch.stack([sd64.encode_prompt([s])[0] for s in bank])  # noqa: E731
    expected = each(TGT).mean(0) - each(SRC).mean(0)
    d = sentence_direction(sd64, SRC, TGT, batch_size=2)
    assert (d[0] - expected).abs().max() < 1e-12
    assert (mean_embedding(sd64, SRC, 1) - mean_embedding(sd64, SRC, 16)).abs().max() < 1e-12
    assert (d + sentence_direction(sd64, TGT, SRC)).abs().max() < 1e-12  # antisymmetric


def test_construct_direction_golden():
    a, b = torch.randn(1, 77, 8), torch.randn(1, 77, 8)
    assert torch.equal(construct_direction(a, b), b - a)
    with pytest.raises(ValueError, match="shape"):
        construct_direction(a, torch.randn(1, 76, 8))


def test_multiplier_is_linear_and_zero_multiplier_reconstructs(sd64, x_t):
    cfg = dataclasses.replace(PRESETS["tiny"], edit=dataclasses.replace(
        PRESETS["tiny"].edit, num_steps=2, xa_guidance=0.0))  # fmt: skip
    d = sentence_direction(sd64, SRC, TGT)
    zero = translate(sd64, x_t, ["a cat"], d, dataclasses.replace(cfg, edit_multiplier=0.0))
    assert (zero.edited - zero.reconstruction).abs().max() < 1e-12
    one = translate(sd64, x_t, ["a cat"], d, cfg)
    half_twice = translate(
        sd64, x_t, ["a cat"], 2 * d, dataclasses.replace(cfg, edit_multiplier=0.5)
    )
    assert (one.edited - half_twice.edited).abs().max() < 1e-10
    assert (one.edited - one.reconstruction).abs().max() > 1e-4


def test_word_swap_direction_lands_on_the_swapped_caption(sd64):
    cfg = dataclasses.replace(PRESETS["tiny"], direction="word_swap")
    task = parse_task("cat2dog")
    d = make_direction(sd64, ["a photo of a cat"], task, cfg)
    target = sd64.encode_prompt(["a photo of a dog"])
    assert (sd64.encode_prompt(["a photo of a cat"]) + d - target).abs().max() < 1e-12
    assert swap_word("a cat and a catalog", task) == "a dog and a catalog"
    with pytest.raises(ValueError, match="source word"):
        swap_word("a horse", task)


def test_template_banks_and_tasks():
    bank = template_sentences("dog")
    assert len(bank) >= 10 and all("dog" in s for s in bank)
    assert parse_task("cat2dog").target == "dog"
    assert parse_task("red_cup2blue_cup").source == "red cup"
    assert parse_task("cat2cat_glasses").target == "cat wearing glasses"
    with pytest.raises(ValueError):
        parse_task("catdog")


def test_direction_file_round_trip(tmp_path):
    d = torch.randn(1, 77, 8)
    path = save_direction(tmp_path / "d.safetensors", d, {"name": "x"})
    back, info = load_direction(path)
    assert torch.equal(back, d) and info["name"] == "x"


def test_ablation_rows_switch_one_component_at_a_time():
    base = PRESETS["paper"]
    rows = {r: ablation_config(base, r) for r in "ABCDE"}
    assert rows["A"].start == "ddpm" and rows["B"].start == "ddim"
    assert not rows["B"].inversion.regularize and rows["C"].inversion.regularize
    assert rows["C"].direction == "word_swap" and rows["D"].direction == "sentences"
    assert rows["D"].edit.xa_guidance == 0.0 and rows["E"].edit.xa_guidance == 0.1
    assert method_config(base, "pix2pix-zero") == rows["E"]
    assert method_config(base, "ddim+word-swap") == rows["B"]
    with pytest.raises(ValueError):
        ablation_config(base, "F")


def test_sdedit_runs_the_strength_fraction_of_the_grid(sd64, monkeypatch):
    import diffrepro.pix2pix_zero.pipeline as pipeline

    seen = {}
    real = pipeline.sample_ddim

    def spy(model, x, schedule, *, timesteps, **kw):
        seen["grid"] = list(timesteps)
        return real(model, x, schedule, timesteps=timesteps, **kw)

    monkeypatch.setattr(pipeline, "sample_ddim", spy)
    cfg = dataclasses.replace(PRESETS["tiny"], sdedit_strength=0.6)
    z0 = torch.zeros(1, 4, 8, 8, dtype=torch.float64)
    out = sdedit(sd64, z0, ["a dog"], cfg, torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all()
    assert seen["grid"] == [int(t) for t in sd64.scheduler.grid(5)[2:]]  # 3 of 5 steps
