import dataclasses

import torch

from diffrepro.core.finetune import denoising_loss
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.sine.config import PRESETS
from diffrepro.sine.editing import edit, make_guide
from diffrepro.sine.finetune import finetune, sine_loss
from diffrepro.sine.guidance import Window
from diffrepro.sine.patch_unet import PatchUNet
from diffrepro.sine.saving import load_finetuned, save_finetuned

from .conftest import same_state

TINY = PRESETS["tiny"]


def fixed(z, n=8, seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 1000, (n,), generator=g), torch.randn((n, *z.shape[1:]), generator=g)


def test_eps_loss_equals_the_core_denoising_loss_without_the_x0_term(sd, image):
    z = sd.encode_images(image[None]).expand(4, -1, -1, -1)
    ctx = sd.encode_prompt("a photo of a dog").expand(4, -1, -1)
    t, noise = fixed(z, 4)
    with torch.no_grad():
        ours = sine_loss(sd, z, ctx, t, noise)
        core = denoising_loss(sd, z, ctx, t=t, noise=noise)
    assert torch.allclose(ours, core, atol=1e-7)


def test_x0_term_matches_a_float64_reference(sd, image):
    z = sd.encode_images(image[None]).expand(2, -1, -1, -1).contiguous()
    ctx = sd.encode_prompt("a photo of a dog").expand(2, -1, -1)
    t, noise = fixed(z, 2)
    with torch.no_grad():
        plain = sine_loss(sd, z, ctx, t, noise)
        full = sine_loss(sd, z, ctx, t, noise, recon_weight=0.7)
        abar = torch.tensor(sd.schedule.alphas_cumprod)[t].view(-1, 1, 1, 1)
        z_t = abar.sqrt() * z.double() + (1 - abar).sqrt() * noise.double()
        timesteps = torch.tensor(sd.schedule.timesteps)[t]
        eps = sd.unet(z_t.float(), timesteps, ctx).double()
        x0 = (z_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        gap = (x0.mean(dim=(2, 3)) - z.double().mean(dim=(2, 3))).abs().mean(dim=1)
        ref = 0.7 * ((t.double() / 1000) ** 2 * gap).mean()
    assert abs(float(full - plain) - float(ref)) < 1e-4 * max(1.0, float(ref))
    assert float(full - plain) > 0


def test_finetune_changes_unet_and_text_encoder_only(sd, image, state_hashes, tmp_path):
    vae, unet, text = state_hashes(sd.vae), state_hashes(sd.unet), state_hashes(sd.text_encoder)
    finetune(sd, image, "dog", TINY, tmp_path, seed=0)
    assert same_state(vae, sd.vae)
    assert not same_state(unet, sd.unet) and not same_state(text, sd.text_encoder)
    changed = [k for k, v in sd.unet.state_dict().items() if not torch.equal(v, unet[k])]
    assert len(changed) == len(list(sd.unet.parameters()))
    assert not sd.unet.training and not sd.text_encoder.training


def test_frozen_text_encoder_option(sd, image, state_hashes, tmp_path):
    text = state_hashes(sd.text_encoder)
    cfg = dataclasses.replace(TINY, train_text_encoder=False)
    finetune(sd, image, "dog", cfg, tmp_path, seed=0)
    assert same_state(text, sd.text_encoder)


def test_finetune_lowers_the_loss_on_a_fixed_batch(sd, image, tmp_path):
    z = sd.encode_images(image[None]).expand(8, -1, -1, -1)
    t, noise = fixed(z)
    caption = TINY.caption.format("dog")

    def loss():
        with torch.no_grad():
            ctx = sd.encode_prompt(caption).expand(8, -1, -1)
            return float(sine_loss(sd, z, ctx, t, noise))

    before = loss()
    finetune(sd, image, "dog", dataclasses.replace(TINY, steps=30, lr=2e-3), tmp_path, seed=0)
    assert loss() < before * 0.9


def test_patch_finetune_saves_plain_keys_and_edits_at_another_size(image, tmp_path):
    sd = tiny_stable_diffusion(seed=0)
    base = tiny_stable_diffusion(seed=0)
    high = torch.nn.functional.interpolate(image[None], size=(64, 64))[0]
    cfg = dataclasses.replace(TINY, patch=True)
    result = finetune(sd, high, "dog", cfg, tmp_path / "train", seed=0)
    assert isinstance(sd.unet, PatchUNet) and sd.unet.init_size == 16 and result.step == 3
    save_finetuned(tmp_path / "ft", sd, "photo of a sks dog", "dog", cfg, "sd-tiny")
    tuned = load_finetuned(tmp_path / "ft", base)
    assert isinstance(tuned.sd.unet, PatchUNet)
    assert same_state(sd.unet.state_dict(), tuned.sd.unet)
    assert same_state(sd.text_encoder.state_dict(), tuned.sd.text_encoder)
    guide = make_guide(tuned, 0.6, Window(500, 1000))
    out = edit(
        base, "a photo of a red dog", [guide], seeds=[0], height=32, width=48,
        guidance_scale=3.0, num_steps=3,
    )  # fmt: skip
    assert out.shape == (1, 4, 8, 12) and torch.isfinite(out).all()


def test_finetune_is_deterministic(image, tmp_path):
    a, b = tiny_stable_diffusion(seed=0), tiny_stable_diffusion(seed=0)
    ra = finetune(a, image, "dog", TINY, tmp_path / "a", seed=3)
    rb = finetune(b, image, "dog", TINY, tmp_path / "b", seed=3)
    assert ra.losses == rb.losses and same_state(a.unet.state_dict(), b.unet)


def test_gradient_checkpointing_option_trains_the_same_models(image, tmp_path):
    weights = {}
    for on in (False, True):
        sd = tiny_stable_diffusion(seed=0)
        cfg = dataclasses.replace(TINY, steps=3, gradient_checkpointing=on)
        finetune(sd, image, "dog", cfg, tmp_path / str(on), seed=0)
        assert sd.unet.gradient_checkpointing is on
        weights[on] = sd.unet.state_dict()
    for name, value in weights[False].items():
        torch.testing.assert_close(weights[True][name], value, atol=1e-6, rtol=1e-5)
