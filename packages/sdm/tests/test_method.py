"""The training objective's wiring (spec §3.4) and the iteration index τ = (t − 1)/T (§3.3)."""

import dataclasses

import numpy as np
import pytest
import torch

from diffrepro.sdm.config import PRESETS
from diffrepro.sdm.decoding import DecodeConfig, compose, initial_state, inpaint
from diffrepro.sdm.likelihood import variance_nll
from diffrepro.sdm.masks import generate_masks
from diffrepro.sdm.train import build_models, generator_losses, train


def tiny(unroll: int = 2, **train_fields):
    cfg = PRESETS["tiny"]
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, unroll=unroll, **train_fields)
    )


def batch(cfg, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(3, 3, 16, 16, generator=gen) * 2 - 1
    mask0 = generate_masks(cfg.masks, 3, np.random.default_rng(seed))
    return image, mask0


def models_for(cfg):
    torch.manual_seed(0)
    models = build_models(cfg, torch.device("cpu"))
    with torch.no_grad():  # a non-trivial σ head (it starts at zero)
        models.generator.to_out.weight[3:].normal_(0, 0.5)
    return models


def test_nll_scores_the_composite_at_tau_zero():
    cfg = tiny(unroll=1)
    models = models_for(cfg)
    image, mask0 = batch(cfg)
    terms, fake = generator_losses(models, cfg, image, mask0, np.random.default_rng(0))
    x0, u0 = initial_state(image, mask0)
    mean, sigma = models.generator(x0, mask0, mask0, u0, torch.zeros(3))  # τ = (1 − 1)/T
    composite = image * mask0 + mean * (1 - mask0)
    assert torch.allclose(fake, composite)
    assert torch.allclose(terms["nll"], variance_nll(image, composite, sigma))
    raw = variance_nll(image, mean, sigma)
    assert not torch.allclose(terms["nll"], raw, rtol=1e-3)


def test_sigma_head_gets_no_gradient_from_adversarial_and_perceptual_terms():
    cfg = tiny()
    image, mask0 = batch(cfg)
    grads = {}
    for names in (("adv", "pcp"), ("nll",)):
        models = models_for(cfg)
        terms, _ = generator_losses(models, cfg, image, mask0, np.random.default_rng(0))
        sum(terms[k] for k in names).backward()
        head = models.generator.to_out
        grads[names] = (head.weight.grad[3:].abs().sum(), head.weight.grad[:3].abs().sum())
    sigma_grad, mean_grad = grads[("adv", "pcp")]
    assert float(sigma_grad) == 0.0 and float(mean_grad) > 0
    sigma_grad, mean_grad = grads[("nll",)]
    assert float(sigma_grad) > 0 and float(mean_grad) == 0.0


def test_generator_loss_is_the_weighted_sum_and_each_weight_matters(tmp_path):
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    batches = lambda n, gen: images[torch.randperm(8, generator=gen)[:n]]  # noqa: E731
    weights = dict(adv_weight=0.7, perceptual_weight=1.3, nll_weight=0.01, steps=2)
    base = train(tiny(**weights), batches, tmp_path / "a", seed=0, progress=False)
    for h in base.history:
        expected = 0.7 * h["adv"] + 1.3 * h["pcp"] + 0.01 * h["nll"]
        assert h["g"] == pytest.approx(expected, rel=1e-5)
    params = lambda r: torch.cat([p.flatten() for p in r.generator.parameters()])  # noqa: E731
    for field in ("adv_weight", "perceptual_weight", "nll_weight"):
        other = train(
            tiny(**{**weights, field: 0.0}), batches, tmp_path / field, seed=0, progress=False
        )
        assert other.history[0]["adv"] == pytest.approx(base.history[0]["adv"])  # same step 1
        assert not torch.allclose(params(base), params(other)), field


def test_decoding_feeds_tau_equal_to_t_minus_one_over_t():
    seen = []

    def model(x, mask0, mask, u, tau):
        seen.append(tau.tolist())
        return torch.zeros_like(x), torch.full_like(x, 0.5)

    image, mask0 = batch(PRESETS["tiny"])
    inpaint(model, image, mask0, DecodeConfig(steps=4))
    assert seen == [[t / 4] * 3 for t in range(4)]


def test_non_finite_loss_stops_training_without_a_checkpoint(tmp_path):
    cfg = tiny(steps=3, checkpoint_every=1)
    bad = lambda n, gen: torch.full((n, 3, 16, 16), float("nan"))  # noqa: E731
    with pytest.raises(FloatingPointError, match="diverged: loss .* step 1"):
        train(cfg, bad, tmp_path, seed=0, progress=False)
    assert not (tmp_path / "generator_ema.safetensors").exists()


def test_gradient_is_clipped_to_grad_clip(tmp_path, monkeypatch):
    norms = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        total = original(params, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        norms.append((max_norm, float(total), float(after)))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    train(tiny(steps=1, grad_clip=1e-3), lambda n, g: images[:n], tmp_path, progress=False)
    assert len(norms) == 2  # generator and discriminator
    for max_norm, before, after in norms:
        assert max_norm == 1e-3 and before > 1e-3 and after == pytest.approx(1e-3, rel=1e-3)


def test_compose_keeps_known_pixels():
    image, mask0 = batch(PRESETS["tiny"])
    out = compose(image, mask0, torch.ones_like(mask0), torch.zeros_like(image))
    assert torch.equal(out * mask0, image * mask0)


def test_non_finite_weights_are_never_saved(tmp_path, monkeypatch):
    from diffrepro.core.nn import EMA

    def poisoned(self, model):
        for value in self.shadow.values():
            if value.is_floating_point():
                value.fill_(float("nan"))

    monkeypatch.setattr(EMA, "update", poisoned)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    with pytest.raises(FloatingPointError, match="non-finite weights"):
        train(tiny(steps=2, checkpoint_every=1), lambda n, g: images[:n], tmp_path, progress=False)
    assert not (tmp_path / "generator_ema.safetensors").exists()
