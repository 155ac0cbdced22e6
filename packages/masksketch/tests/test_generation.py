from dataclasses import replace

import pytest
import torch

from diffrepro.maskgit.decoding import DecodeConfig
from diffrepro.masksketch.config import PRESETS, TINY, MaskSketchConfig
from diffrepro.masksketch.generation import generate, plain_maskgit, sdedit_like, sketch_start


def sketches(n=2, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_generate_returns_k_complete_candidates_per_sketch(tiny_models):
    model, tok = tiny_models
    cfg = replace(TINY, candidates=3, num_iter=3)
    labels = torch.tensor([1, 2])
    out = generate(model, tok, sketches(), labels, cfg, torch.Generator().manual_seed(0))
    mc = model.config
    assert out.images.shape == (6, 3, 16, 16) and out.tokens.shape == (6, mc.seq_len)
    assert not (out.tokens == mc.mask_id).any() and int(out.tokens[:, 1:].max()) < 16
    assert out.tokens[:, 0].tolist() == [mc.class_id(v) for v in (1, 1, 1, 2, 2, 2)]
    assert out.labels.tolist() == [1, 1, 1, 2, 2, 2]
    assert torch.equal(
        out.sketch_tokens[:, 1:], tok.encode(sketches()).flatten(1).repeat_interleave(3, 0)
    )
    assert out.result.sequences.shape[1] == 3 and bool((out.images >= 0).all())


def test_start_masks_n0_tokens_and_keeps_the_rest_of_the_sketch(tiny_models):
    model, tok = tiny_models
    x, start = sketch_start(model, tok, sketches(), torch.tensor([0, 1]), TINY, torch.Generator())
    masked = start == model.config.mask_id
    assert masked[:, 1:].sum(1).tolist() == [15] * 4  # min(⌈0.95·16⌉, 15)
    assert torch.equal(start[~masked], x[~masked])


def test_seeded_generation_is_deterministic(tiny_models):
    model, tok = tiny_models
    labels = torch.tensor([0, 1])
    a = generate(model, tok, sketches(), labels, TINY, torch.Generator().manual_seed(5))
    b = generate(model, tok, sketches(), labels, TINY, torch.Generator().manual_seed(5))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.images, b.images)


def test_baselines(tiny_models):
    model, tok = tiny_models
    labels = torch.tensor([0, 1])
    dec = DecodeConfig(num_iter=4)
    gen = torch.Generator().manual_seed(0)
    sd = sdedit_like(model, tok, sketches(), labels, TINY, dec, gen)
    mc = model.config
    assert not (sd.tokens == mc.mask_id).any()
    # the visible sketch tokens survive plain MaskGIT decoding (they are known tokens there)
    gen = torch.Generator().manual_seed(0)
    x, start = sketch_start(model, tok, sketches(), labels, TINY, gen)
    visible = start != mc.mask_id
    assert torch.equal(sd.tokens[visible], x[visible])
    plain = plain_maskgit(model, tok, sketches(), labels, TINY, dec, gen)
    assert plain.images.shape == (4, 3, 16, 16) and not (plain.tokens == mc.mask_id).any()


def test_bad_inputs(tiny_models):
    model, tok = tiny_models
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        generate(model, tok, torch.rand(1, 3, 8, 8), torch.tensor([0]), TINY)
    with pytest.raises(ValueError, match="class labels"):
        generate(model, tok, sketches(1), torch.tensor([3]), TINY)
    with pytest.raises(ValueError, match="do not exist in a 2-layer"):
        generate(model, tok, sketches(1), torch.tensor([0]), PRESETS["paper"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lambda_structure", 1.5, "lambda_structure must lie in"),
        ("lambda_structure", float("nan"), "lambda_structure must lie in"),
        ("min_mask_rate", 0.99, "exceeds max_mask_rate"),
        ("num_iter", 0, "num_iter must be at least 1"),
        ("candidates", 0, "candidates must be at least 1"),
        ("guidance_scale", -1.0, "guidance_scale must be"),
        ("structure_mode", "kl", "structure_mode must be one of"),
        ("guidance_rows", "three", "guidance_rows must be one of"),
        ("layers", (), "layers must be distinct"),
        ("layers", (1, 1), "layers must be distinct"),
        ("schedule", "zigzag", "unknown mask schedule"),
    ],
)
def test_config_checks(field, value, message):
    with pytest.raises(ValueError, match=message):
        replace(MaskSketchConfig(), **{field: value})


def test_paper_preset_is_the_official_config():
    p = PRESETS["paper"]
    assert p.layers == (1, 3, 16, 20, 21, 22) and p.lambda_structure == 0.9
    assert (p.min_mask_rate, p.max_mask_rate, p.guidance_scale) == (0.35, 0.95, 0.6)
    assert p.structure_mode == "sym_ce" and p.schedule == "linear" and p.candidates == 8
    assert p.temperature_structure == p.temperature_confidence == 0.0
    assert p.guidance_rows == "all"


def test_generate_starts_from_the_sketch_tokens(tiny_models):
    """The first step's ŷ keeps the visible sketch tokens of the start (same seed, same draw)."""
    model, tok = tiny_models
    cfg = replace(TINY, candidates=4, num_iter=2)
    labels = torch.tensor([0, 2])
    x, start = sketch_start(model, tok, sketches(), labels, cfg, torch.Generator().manual_seed(7))
    out = generate(model, tok, sketches(), labels, cfg, torch.Generator().manual_seed(7))
    visible = start != model.config.mask_id
    assert int(visible[:, 1:].sum()) == 8  # one visible sketch token per row
    assert torch.equal(out.result.sequences[:, 0][visible], x[visible])
