"""core.finetune.finetune_modules / load_image_resized, models.sd_sources and the UNet's
``position_features`` input (added for Imagic and SINE)."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.core.finetune import finetune_modules, load_image_resized
from diffrepro.core.models.sd_export import save_stable_diffusion
from diffrepro.core.models.sd_sources import open_stable_diffusion, parse_dtype
from diffrepro.core.models.sd_tiny import TINY_WORDS, tiny_stable_diffusion
from diffrepro.core.tokenizer import minimal_vocab
from diffrepro.core.train import TrainConfig


def test_finetune_modules_trains_only_the_given_modules(tmp_path):
    sd = tiny_stable_diffusion()
    vae = {k: v.clone() for k, v in sd.vae.state_dict().items()}
    unet = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    text = {k: v.clone() for k, v in sd.text_encoder.state_dict().items()}
    ids = sd.tokenizer(["a photo of a cat"])
    z = torch.randn(1, 4, 8, 8)

    def loss_fn(index):
        ctx = sd.text_encoder(ids)
        return ((sd.unet(z, torch.tensor([500]), ctx) - z) ** 2).mean()

    config = TrainConfig(steps=2, batch_size=1, lr=1e-3, ema_decay=None, checkpoint_every=2)
    result = finetune_modules(
        {"unet": sd.unet, "text_encoder": sd.text_encoder}, loss_fn, config, tmp_path
    )
    assert result.step == 2 and len(result.losses) == 2
    assert all(torch.equal(v, sd.vae.state_dict()[k]) for k, v in vae.items())
    assert all(not torch.equal(v, sd.unet.state_dict()[k]) for k, v in unet.items())
    assert any(not torch.equal(v, sd.text_encoder.state_dict()[k]) for k, v in text.items())
    assert not sd.unet.training and not sd.text_encoder.training  # modes restored
    with pytest.raises(ValueError, match="nothing to fine-tune"):
        finetune_modules({}, loss_fn, config, tmp_path / "x")


def test_load_image_resized_composites_on_white(tmp_path):
    array = np.zeros((10, 20, 4), dtype=np.uint8)
    array[:, :10] = (255, 0, 0, 255)  # opaque red left half, transparent right half
    Image.fromarray(array, "RGBA").save(tmp_path / "a.png")
    image = load_image_resized(tmp_path / "a.png", 8, 6)
    assert image.shape == (3, 8, 6)
    assert torch.allclose(image[:, :, -1], torch.ones(3, 8), atol=0.02)  # white
    assert image[0, :, 0].min() > 0.9 and image[1, :, 0].max() < -0.9  # red
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image_resized(tmp_path / "none.png", 8, 8)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read"):
        load_image_resized(tmp_path / "bad.png", 8, 8)


def test_open_stable_diffusion_sources(tmp_path):
    sd = open_stable_diffusion("sd-tiny")
    assert sd.unet.config.block_out_channels == (16, 32)
    with pytest.raises(FileNotFoundError, match="not found"):
        open_stable_diffusion(tmp_path / "nope" / "model.ckpt")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ValueError, match="not a diffusers folder"):
        open_stable_diffusion(tmp_path / "w.txt")
    (tmp_path / "w.ckpt").write_text("x")
    with pytest.raises(ValueError, match="tokenizer"):
        open_stable_diffusion(tmp_path / "w.ckpt")
    assert parse_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        parse_dtype("int8")


def test_position_features_are_added_after_conv_in():
    sd = tiny_stable_diffusion()
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([300])
    ctx = sd.encode_prompt("a cat")
    feats = torch.randn(1, 16, 8, 8)
    seen = []
    sd.unet.down_blocks[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    with torch.no_grad():
        plain = sd.unet(x, t, ctx)
        zero = sd.unet(x, t, ctx, torch.zeros(1, 16, 8, 8))
        moved = sd.unet(x, t, ctx, feats)
        first = sd.unet.conv_in(x)
    assert torch.equal(plain, zero) and not torch.allclose(plain, moved)
    assert torch.allclose(seen[2], first + feats, atol=1e-6)


def test_open_stable_diffusion_reads_a_diffusers_folder_like_the_model_written(tmp_path):
    sd = tiny_stable_diffusion(seed=3)
    vocab, merges = minimal_vocab(list(TINY_WORDS))
    save_stable_diffusion(sd, tmp_path / "sd", vocab=vocab, merges=merges)
    loaded = open_stable_diffusion(tmp_path / "sd")
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        context = sd.encode_prompt(["a red apple"])
        torch.testing.assert_close(loaded.encode_prompt(["a red apple"]), context)
        torch.testing.assert_close(loaded.unet(z, 10, context), sd.unet(z, 10, context))
