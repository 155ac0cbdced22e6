"""core.finetune: the latent diffusion loss against a float64 reference, posterior latents,
and UNet fine-tuning touching only the UNet."""

import numpy as np
import torch

from diffrepro.core.finetune import ImageLatents, denoising_loss, finetune_unet
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.core.train import TrainConfig

torch.set_num_threads(1)


def test_denoising_loss_matches_a_float64_reference():
    sd = tiny_stable_diffusion()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 8, 8, generator=g)
    noise = torch.randn(z.shape, generator=g)
    t = torch.tensor([10, 900])
    context = sd.encode_prompt(["a photo of a cat", "a dog"]).detach()
    got = denoising_loss(sd, z, context, t=t, noise=noise)
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    abar = np.cumprod(1 - betas)[t.numpy()].reshape(-1, 1, 1, 1)
    zt = np.sqrt(abar) * z.double().numpy() + np.sqrt(1 - abar) * noise.double().numpy()
    with torch.no_grad():
        pred = sd.unet(torch.from_numpy(zt).float(), t, context).double().numpy()
    expected = np.mean((pred - noise.double().numpy()) ** 2)
    assert abs(float(got) - expected) < 1e-5 * max(1.0, expected)


def test_image_latents_and_unet_finetuning_touch_only_the_unet(tmp_path):
    sd = tiny_stable_diffusion()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    latents = ImageLatents.encode(sd, images)
    assert latents.mean.shape == (3, 2, 4, 8, 8) and len(latents) == 3
    assert torch.allclose(latents.mean[:, 1], sd.encode_images(images.flip(-1)), atol=1e-6)
    text = {k: v.clone() for k, v in sd.text_encoder.state_dict().items()}
    vae = {k: v.clone() for k, v in sd.vae.state_dict().items()}
    unet = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    context = sd.encode_prompt("a photo of a cat").detach()
    config = TrainConfig(steps=2, batch_size=2, lr=1e-3, ema_decay=None, seed=0)
    result = finetune_unet(sd, latents, context, config, tmp_path)
    assert result.step == 2 and all(np.isfinite(result.losses))
    assert all(torch.equal(v, sd.text_encoder.state_dict()[k]) for k, v in text.items())
    assert all(torch.equal(v, sd.vae.state_dict()[k]) for k, v in vae.items())
    assert any(not torch.equal(v, sd.unet.state_dict()[k]) for k, v in unet.items())
