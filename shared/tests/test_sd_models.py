"""SD stack without diffusers: folder loading, key variants, errors, hooks, dtypes, the bundle."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffrepro.core.models.autoencoder_kl import AutoencoderKL, AutoencoderKLConfig
from diffrepro.core.models.clip import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    CLIPVisionModel,
)
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.core.models.sd_unet import UNet2DConditionConfig, UNet2DConditionModel
from diffrepro.core.models.stable_diffusion import StableDiffusion
from diffrepro.core.nn.transformer import AttentionStore, CrossAttention, attention_hooks
from diffrepro.core.samplers import make_generators
from diffrepro.core.tokenizer import write_vocab_files

torch.set_num_threads(1)

UNET = UNet2DConditionConfig(
    block_out_channels=(8, 16),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=1,
    norm_num_groups=4,
    cross_attention_dim=12,
    attention_head_dim=2,
    sample_size=8,
)
VAE = AutoencoderKLConfig(
    block_out_channels=(8, 16),
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    norm_num_groups=4,
    latent_channels=4,
)
TEXT = CLIPTextConfig(
    vocab_size=600, hidden_size=12, intermediate_size=20, num_hidden_layers=2, num_attention_heads=3
)


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (zero-initialised layers would hide wiring mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def save_folder(
    folder: Path, model: torch.nn.Module, weights: str, state: dict | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = dataclasses.asdict(model.config)
    (folder / "config.json").write_text(json.dumps({"_class_name": "x", **config}))
    state = model.state_dict() if state is None else state
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / weights))
    return folder


def make_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return randomized(UNet2DConditionModel(UNET))


def test_unet_folder_round_trip_and_errors(tmp_path):
    unet = make_unet()
    folder = save_folder(tmp_path / "unet", unet, "diffusion_pytorch_model.safetensors")
    loaded = UNet2DConditionModel.from_pretrained(folder)
    assert not any(p.is_meta for p in loaded.parameters())
    x, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 12)
    with torch.no_grad():
        assert torch.equal(unet(x, 3, ctx), loaded(x, torch.tensor([3, 3]), ctx))

    with pytest.raises(FileNotFoundError, match="config not found"):
        UNet2DConditionModel.from_pretrained(tmp_path / "nowhere")
    state = unet.state_dict()
    del state["conv_in.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["conv_out.weight"] = torch.zeros(3, 8, 3, 3)
    save_folder(tmp_path / "bad", unet, "diffusion_pytorch_model.safetensors", state)
    with pytest.raises(ValueError) as err:
        UNet2DConditionModel.from_pretrained(tmp_path / "bad")
    message = str(err.value)
    assert "conv_in.bias" in message and "extra.weight" in message and "conv_out.weight" in message
    (tmp_path / "bad" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights file"):
        UNet2DConditionModel.from_pretrained(tmp_path / "bad")


def test_config_refuses_unsupported_values(tmp_path):
    folder = save_folder(tmp_path / "unet", make_unet(), "diffusion_pytorch_model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "class_embed_type": "timestep"}))
    with pytest.raises(ValueError, match="class_embed_type"):
        UNet2DConditionModel.from_pretrained(folder)
    (folder / "config.json").write_text(
        json.dumps({**config, "down_block_types": ["Foo", "DownBlock2D"]})
    )
    with pytest.raises(ValueError, match="Foo"):
        UNet2DConditionModel.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "some_new_key": 1}))  # ignored
    UNet2DConditionModel.from_pretrained(folder)


def test_fp16_weights_run_in_fp32_and_float64(tmp_path):
    unet = make_unet()
    half = {k: v.half() for k, v in unet.state_dict().items()}
    folder = save_folder(tmp_path / "unet", unet, "diffusion_pytorch_model.fp16.safetensors", half)
    loaded = UNet2DConditionModel.from_pretrained(folder, variant="fp16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    wide = UNet2DConditionModel.from_pretrained(folder, variant="fp16", dtype=torch.float64)
    x, ctx = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 12)
    with torch.no_grad():
        out32, out64 = loaded(x, 10, ctx), wide(x.double(), 10, ctx.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out32.double(), out64, atol=1e-4, rtol=1e-4)


def test_text_encoder_key_variants(tmp_path):
    torch.manual_seed(0)
    text = randomized(CLIPTextModel(TEXT))
    v4 = {"text_model." + k: v for k, v in text.state_dict().items()}
    v4["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    folder = save_folder(tmp_path / "te", text, "model.safetensors", v4)
    loaded = CLIPTextModel.from_pretrained(folder)
    ids = torch.randint(0, 600, (2, 77))
    with torch.no_grad():
        assert torch.equal(text(ids), loaded(ids))
    # causal: changing a later token leaves earlier positions untouched
    ids2 = ids.clone()
    ids2[:, 40] = (ids2[:, 40] + 1) % 600
    with torch.no_grad():
        a, b = loaded(ids), loaded(ids2)
    assert torch.equal(a[:, :40], b[:, :40]) and not torch.equal(a[:, 40:], b[:, 40:])


def test_vae_legacy_attention_names(tmp_path):
    torch.manual_seed(0)
    vae = randomized(AutoencoderKL(VAE))
    legacy = {}
    for key, value in vae.state_dict().items():
        for new, old in (
            (".to_q.", ".query."),
            (".to_k.", ".key."),
            (".to_v.", ".value."),
            (".to_out.0.", ".proj_attn."),
        ):
            key = key.replace(new, old)
        legacy[key] = value
    assert any(".proj_attn." in k for k in legacy)
    loaded = AutoencoderKL.from_pretrained(
        save_folder(tmp_path / "vae", vae, "diffusion_pytorch_model.safetensors", legacy)
    )
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(vae.encode(x).mean, loaded.encode(x).mean)
        assert loaded.decode(loaded.encode(x).mean).shape == x.shape


def test_vision_encoder_checks_input_size(tmp_path):
    config = CLIPVisionConfig(
        hidden_size=12,
        intermediate_size=20,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
        projection_dim=6,
    )
    model = randomized(CLIPVisionModel(config))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    loaded = CLIPVisionModel.from_pretrained(tmp_path)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x)) and loaded(x).shape == (2, 6)
    with pytest.raises(ValueError, match="pixel_values"):
        loaded(torch.randn(2, 3, 32, 32))


def test_hooks_capture_probabilities_and_identity_replacement_changes_nothing():
    unet = make_unet()
    x, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 12)
    with torch.no_grad():
        fused = unet(x, 7, ctx)
        store = AttentionStore(cross_only=False)
        with attention_hooks(unet, store) as names:
            captured = unet(x, 7, ctx)
        with attention_hooks(unet, lambda name, is_cross, probs: probs.clone()):
            replaced = unet(x, 7, ctx)
    layers = [m for m in unet.modules() if isinstance(m, CrossAttention)]
    assert len(names) == len(layers) == 8 and set(store.maps) == set(names)
    for name, (probs,) in store.maps.items():
        assert probs.shape[:2] == (2, 2)
        assert probs.shape[-1] == (5 if name.endswith("attn2") else probs.shape[-2])
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    torch.testing.assert_close(captured, fused, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(replaced, captured, atol=0, rtol=0)
    assert all(m.hook is None for m in layers)  # removed on exit


def test_hooks_replace_cross_attention():
    unet = make_unet()
    x, ctx = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 12)

    def first_token_only(name, is_cross, probs):
        if not is_cross:
            return None
        out = torch.zeros_like(probs)
        out[..., 0] = 1
        return out

    with torch.no_grad(), attention_hooks(unet, first_token_only):
        edited = unet(x, 7, ctx)
        moved = ctx.clone()
        moved[:, 1:] = torch.randn(1, 4, 12)
        edited_other_tokens = unet(x, 7, moved)
    # only token 0 is attended, so the other tokens no longer matter
    torch.testing.assert_close(edited, edited_other_tokens)
    with torch.no_grad():
        assert not torch.allclose(unet(x, 7, ctx), edited)
    with (
        attention_hooks(unet, lambda n, c, p: p[..., :1]),
        pytest.raises(ValueError, match="shape"),
    ):
        unet(x, 7, ctx)


def test_gradients_flow_through_captured_cross_attention():
    """pix2pix-zero differentiates a loss on the cross-attention maps w.r.t. the latents."""
    unet = make_unet()
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    maps = []
    with attention_hooks(
        unet, lambda name, is_cross, probs: maps.append(probs) if is_cross else None
    ):
        unet(x, 7, torch.randn(1, 5, 12))
    assert len(maps) == 4 and all(m.requires_grad for m in maps)
    sum(m[..., 1].pow(2).sum() for m in maps).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.fixture
def sd_folder(tmp_path):
    """A whole SD folder written with our own models (tokenizer: bytes + a few words)."""
    vocab = write_vocab_files(tmp_path / "tokenizer", ["a", "cat", "dog"])
    text_config = dataclasses.replace(TEXT, vocab_size=len(vocab))
    torch.manual_seed(1)
    save_folder(tmp_path / "unet", make_unet(), "diffusion_pytorch_model.safetensors")
    save_folder(
        tmp_path / "vae", randomized(AutoencoderKL(VAE)), "diffusion_pytorch_model.safetensors"
    )
    save_folder(
        tmp_path / "text_encoder", randomized(CLIPTextModel(text_config)), "model.safetensors"
    )
    (tmp_path / "scheduler").mkdir()
    scheduler = {
        "_class_name": "PNDMScheduler",
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "clip_sample": False,
        "skip_prk_steps": True,
    }
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": [None, None],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    return tmp_path


def test_bundle_samples_inverts_and_runs_in_float64(sd_folder):
    sd = StableDiffusion.load(sd_folder)
    assert sd.scheduler.grid(4).tolist() == [751, 501, 251, 1]
    g = torch.Generator().manual_seed(0)
    latents = sd.initial_latents(1, 16, 16, g)
    z = sd.sample("a cat", num_steps=4, guidance_scale=3.0, latents=latents)
    assert z.shape == (1, 4, 8, 8) and torch.isfinite(z).all()
    sd64 = StableDiffusion.load(sd_folder, dtype=torch.float64)
    z64 = sd64.sample("a cat", num_steps=4, guidance_scale=3.0, latents=latents.double())
    assert z64.dtype == torch.float64
    torch.testing.assert_close(z64.float(), z, atol=1e-4, rtol=1e-4)
    images = sd64.decode_latents(z64)
    assert images.shape == (1, 3, 16, 16) and images.dtype == torch.float64
    z0 = sd64.encode_images(images)
    zT = sd64.invert(z0, "a cat", num_steps=4)
    assert zT.dtype == torch.float64 and zT.shape == z0.shape
    # one step: from alpha-bar_0 (set_alpha_to_one=False) to t=1 with eps(z0, 1, prompt)
    with torch.no_grad():
        eps = sd64.unet(z0, 1, sd64.encode_prompt("a cat"))
    a_from, a_to = sd64.schedule.alphas_cumprod[0], sd64.schedule.alphas_cumprod[1]
    x0_hat = (z0 - (1 - a_from) ** 0.5 * eps) / a_from**0.5
    expected = a_to**0.5 * x0_hat + (1 - a_to) ** 0.5 * eps
    torch.testing.assert_close(sd64.invert(z0, "a cat", num_steps=1), expected, atol=1e-12, rtol=0)


def test_bundle_reports_a_broken_folder(sd_folder):
    (sd_folder / "text_encoder" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="text_encoder"):
        StableDiffusion.load(sd_folder)
    (sd_folder / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet2DModel"]}))
    with pytest.raises(ValueError, match="model_index.json"):
        StableDiffusion.load(sd_folder)


def test_tiny_stack_is_seeded_and_samples_per_sample_deterministically():
    sd = tiny_stable_diffusion(seed=0)
    same, other = tiny_stable_diffusion(seed=0), tiny_stable_diffusion(seed=1)
    assert torch.equal(sd.unet.conv_out.weight, same.unet.conv_out.weight)
    assert not torch.equal(sd.unet.conv_out.weight, other.unet.conv_out.weight)
    pair = sd.sample(["a cat", "a red dog"], num_steps=2, generator=make_generators([5, 6]))
    alone = sd.sample(["a red dog"], num_steps=2, generator=make_generators([6]))
    assert pair.shape == (2, 4, 8, 8)
    torch.testing.assert_close(pair[1:], alone, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients_and_saves_activations():
    sd = tiny_stable_diffusion(seed=0)
    unet = sd.unet.train()
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    context = sd.encode_prompt(["a cat", "a dog"]).detach()
    grads, saved = {}, {}
    for on in (False, True):
        unet.enable_gradient_checkpointing(on)
        unet.zero_grad(set_to_none=True)
        count = [0]

        def pack(t, count=count):
            count[0] += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = unet(x, torch.tensor([10, 500]), context).square().mean()
        loss.backward()
        grads[on] = [p.grad.clone() for p in unet.parameters()]
        saved[on] = count[0]
    for a, b in zip(grads[False], grads[True], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert saved[True] < saved[False] / 2  # the blocks' activations are not kept
    unet.eval()
    with torch.no_grad():  # inference is unchanged and never checkpoints
        torch.testing.assert_close(unet(x, 10, context), unet(x, 10, context))
