import copy
import dataclasses

import pytest
import torch

from diffrepro.core.finetune import denoising_loss
from diffrepro.imagic.config import PRESETS
from diffrepro.imagic.pipeline import fit
from diffrepro.imagic.sampling import guided_model, sample_embedding
from diffrepro.imagic.stages import (
    finetune,
    image_latents,
    interpolate,
    optimize_embedding,
    reconstruction_loss,
    train_config,
)

from .conftest import same_state

TINY = PRESETS["tiny"]
PROMPT = "a photo of a red cat"


def fixed_pairs(z, n=16, seed=3):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 1000, (n,), generator=g)
    noise = torch.randn((n, *z.shape[1:]), generator=g)
    return t, noise


def target(sd):
    with torch.no_grad():
        return sd.encode_prompt(PROMPT)


def test_stage_a_changes_only_a_copy_of_the_embedding(sd, image, state_hashes, tmp_path):
    nets = {name: state_hashes(getattr(sd, name)) for name in ("unet", "vae", "text_encoder")}
    e_tgt = target(sd)
    e_keep = e_tgt.clone()
    latents = image_latents(sd, image, "mean", 0)
    cfg = train_config(5, 1e-2, TINY, 0)
    e_opt, result = optimize_embedding(sd, latents, e_tgt, cfg, tmp_path)
    for name, before in nets.items():
        assert same_state(before, getattr(sd, name)), name
    assert torch.equal(e_tgt, e_keep) and torch.equal(e_tgt, target(sd))
    assert e_opt.shape == (1, sd.tokenizer.max_length, sd.text_encoder.config.hidden_size)
    assert not torch.equal(e_opt, e_tgt) and len(result.losses) == 5
    # first Adam step moves every element by about lr (sign of the gradient)
    assert (e_opt - e_tgt).abs().max() <= 5 * 1e-2 + 1e-6
    assert all(p.requires_grad for p in sd.unet.parameters())  # flags restored


def test_stage_a_lowers_the_loss_on_a_fixed_t_eps_set(sd, image, tmp_path):
    latents = image_latents(sd, image, "mean", 0)
    z = latents.mean[:, 0]
    t, noise = fixed_pairs(z)
    e_tgt = target(sd)
    e_opt, _ = optimize_embedding(sd, latents, e_tgt, train_config(30, 3e-2, TINY, 0), tmp_path)
    before = reconstruction_loss(sd, z, e_tgt, t, noise)
    after = reconstruction_loss(sd, z, e_opt, t, noise)
    assert after < before


def test_stage_b_trains_only_the_unet_and_keeps_e_opt(sd, image, state_hashes, tmp_path):
    latents = image_latents(sd, image, "mean", 0)
    z = latents.mean[:, 0]
    t, noise = fixed_pairs(z)
    e_opt = target(sd) + 0.1
    e_keep = e_opt.clone()
    vae, text = state_hashes(sd.vae), state_hashes(sd.text_encoder)
    unet = state_hashes(sd.unet)
    before = reconstruction_loss(sd, z, e_opt, t, noise)
    finetune(sd, latents, e_opt, train_config(30, 2e-3, TINY, 0), tmp_path)
    assert torch.equal(e_opt, e_keep)
    assert same_state(vae, sd.vae) and same_state(text, sd.text_encoder)
    changed = [k for k, v in sd.unet.state_dict().items() if not torch.equal(v, unet[k])]
    assert len(changed) == len([p for p in sd.unet.parameters()])
    assert reconstruction_loss(sd, z, e_opt, t, noise) < before * 0.9
    assert not sd.unet.training


def test_stage_a_gradient_reaches_the_embedding_through_the_loss(sd, image):
    latents = image_latents(sd, image, "mean", 0)
    z = latents.mean[:, 0]
    e = target(sd).requires_grad_(True)
    t, noise = fixed_pairs(z, n=1)
    denoising_loss(sd, z, e, t=t, noise=noise).backward()
    assert e.grad is not None and e.grad.abs().sum() > 0


def test_interpolation_is_exact_at_the_ends_and_linear():
    g = torch.Generator().manual_seed(0)
    e_tgt, e_opt = torch.randn(1, 7, 5, generator=g), torch.randn(1, 7, 5, generator=g)
    assert torch.equal(interpolate(e_tgt, e_opt, 0.0), e_opt)
    assert torch.equal(interpolate(e_tgt, e_opt, 1.0), e_tgt)
    mid = interpolate(e_tgt, e_opt, 0.5)
    assert torch.allclose(mid, (e_tgt + e_opt) / 2, atol=1e-7)
    a, b = interpolate(e_tgt, e_opt, 0.3), interpolate(e_tgt, e_opt, 0.7)
    assert torch.allclose((a + b) / 2, mid, atol=1e-6)
    expected = 0.3 * e_tgt.double() + 0.7 * e_opt.double()
    assert torch.allclose(a.double(), expected, atol=1e-6)
    far = interpolate(e_tgt, e_opt, 1.2)
    assert torch.allclose(far, e_tgt + 0.2 * (e_tgt - e_opt), atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        interpolate(e_tgt, e_opt[:, :3], 0.5)
    with pytest.raises(ValueError, match="finite"):
        interpolate(e_tgt, e_opt, float("nan"))


def sample(sd, cond, w=3.0, seeds=(0, 1)):
    return sample_embedding(
        sd, cond, seeds=list(seeds), height=32, width=32, guidance_scale=w, num_steps=3
    )


def test_eta_zero_samples_exactly_as_e_opt_and_one_as_e_tgt(sd):
    e_tgt = target(sd)
    e_opt = e_tgt + 0.3 * torch.randn_like(e_tgt)
    assert torch.equal(sample(sd, interpolate(e_tgt, e_opt, 0.0)), sample(sd, e_opt))
    assert torch.equal(sample(sd, interpolate(e_tgt, e_opt, 1.0)), sample(sd, e_tgt))
    assert not torch.equal(sample(sd, e_opt), sample(sd, e_tgt))


def test_sample_k_depends_only_on_seed_k(sd):
    e = target(sd)
    both = sample(sd, e, seeds=(4, 5))
    # batch 1 vs 2 may round differently in float32 GEMMs
    torch.testing.assert_close(sample(sd, e, seeds=(5,))[0], both[1], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(both[0], both[1], atol=1e-2)


def record_calls(unet):
    calls = []
    unet.register_forward_pre_hook(lambda _m, args: calls.append((args[0].shape[0], args[2])))
    return calls


def test_guidance_one_never_evaluates_the_unconditional_branch(sd):
    e = target(sd)
    calls = record_calls(sd.unet)
    sample(sd, e, w=1.0)
    assert len(calls) == 3 and all(n == 2 for n, _ in calls)
    assert all(torch.equal(c, e.expand(2, -1, -1)) for _, c in calls)
    calls.clear()
    sample(sd, e, w=2.0)
    uncond = sd.encode_prompt("")
    assert len(calls) == 3
    for n, ctx in calls:
        assert n == 4 and torch.equal(ctx[:2], uncond.expand(2, -1, -1))
        assert torch.equal(ctx[2:], e.expand(2, -1, -1))


def test_guidance_is_uncond_plus_w_times_the_difference(sd):
    e, u = target(sd), sd.encode_prompt("")
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    with torch.no_grad():
        got = guided_model(sd, e, u, 4.0)(x, t)
        c, n = sd.unet(x, t, e), sd.unet(x, t, u)
    assert torch.allclose(got, n + 4.0 * (c - n), atol=1e-5)


def test_latent_modes(sd, image):
    mean = image_latents(sd, image, "mean", 0)
    assert torch.equal(mean.std, torch.zeros_like(mean.std))
    once = image_latents(sd, image, "sample_once", 0)
    assert torch.equal(once.mean, image_latents(sd, image, "sample_once", 0).mean)
    assert not torch.equal(once.mean, mean.mean) and torch.equal(once.std, mean.std)
    each = image_latents(sd, image, "sample_each_step", 0)
    assert torch.equal(each.mean, mean.mean) and each.std.abs().sum() > 0
    assert torch.equal(mean.mean[:, 0], mean.mean[:, 1])  # never mirrored
    with torch.no_grad():
        direct = sd.encode_images(image[None])
    assert torch.allclose(mean.mean[:, 0], direct, atol=1e-6)  # the image itself, unflipped
    assert mean.mean.shape[-1] == 32 // 4  # VAE factor 2 ** (levels - 1)


def fit_tiny(sd, image, tmp_path, **changes):
    import dataclasses

    cfg = dataclasses.replace(TINY, **changes)
    return fit(sd, image, PROMPT, cfg, tmp_path, seed=0)


def test_ablations_switch_the_stages_off(sd, image, state_hashes, tmp_path):
    unet = state_hashes(sd.unet)
    no_b = fit_tiny(sd, image, tmp_path / "a", stage_b=False)
    assert same_state(unet, sd.unet) and not no_b.losses_b
    assert not torch.equal(no_b.e_opt, no_b.e_tgt)
    no_a = fit_tiny(sd, image, tmp_path / "b", stage_a=False)
    assert torch.equal(no_a.e_opt, no_a.e_tgt) and not no_a.losses_a
    assert not same_state(unet, sd.unet) and not (tmp_path / "b" / "stage_a").exists()


def test_fit_is_deterministic(sd, image, tmp_path):
    base = copy.deepcopy(sd.unet)
    first = fit_tiny(sd, image, tmp_path / "1")
    s1 = sample(sd, interpolate(first.e_tgt, first.e_opt, 0.7))
    sd.unet = base
    second = fit_tiny(sd, image, tmp_path / "2")
    assert torch.equal(first.e_opt, second.e_opt) and first.losses_b == second.losses_b
    assert torch.equal(s1, sample(sd, interpolate(second.e_tgt, second.e_opt, 0.7)))


def test_gradient_checkpointing_option_trains_the_same_unet(image, tmp_path):
    from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

    cfg = dataclasses.replace(TINY, embed_steps=2, finetune_steps=3)
    weights = {}
    for on in (False, True):
        sd = tiny_stable_diffusion(seed=0)
        fit(sd, image, "a dog", dataclasses.replace(cfg, gradient_checkpointing=on),
            tmp_path / str(on), seed=0)  # fmt: skip
        assert sd.unet.gradient_checkpointing is on
        weights[on] = sd.unet.state_dict()
    for name, value in weights[False].items():
        torch.testing.assert_close(weights[True][name], value, atol=1e-6, rtol=1e-5)
