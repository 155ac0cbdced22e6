"""Our SD models and tokenizer against diffusers / transformers: tiny random models saved with
``save_pretrained`` into tmp_path and loaded with ours; outputs equal within 1e-5 in fp32."""

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffusers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from diffrepro.core.models.autoencoder_kl import AutoencoderKL  # noqa: E402
from diffrepro.core.models.clip import CLIPTextModel, CLIPVisionModel  # noqa: E402
from diffrepro.core.models.sd_unet import UNet2DConditionModel  # noqa: E402
from diffrepro.core.tokenizer import CLIPTokenizer, write_vocab_files  # noqa: E402

pytestmark = pytest.mark.parity
torch.set_num_threads(1)
TOL = {"atol": 1e-5, "rtol": 1e-4}

UNET_CONFIGS = {
    # SD 1.x shape: 4 levels, 2 layers, 8 heads, conv projections (686 tensors like SD 1.5)
    "sd1": dict(
        block_out_channels=(32, 64, 128, 128),
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=8,
        sample_size=8,
    ),
    # SD 2.x traits: linear projections, per-level head counts, upcast attention, 2 transformer
    # layers, odd layout of block types and per-level layers
    "sd2": dict(
        block_out_channels=(16, 32, 32),
        norm_num_groups=8,
        cross_attention_dim=24,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=(1, 2, 1),
        attention_head_dim=(2, 4, 8),
        use_linear_projection=True,
        upcast_attention=True,
        transformer_layers_per_block=2,
        in_channels=3,
        out_channels=5,
        only_cross_attention=(False, True, False),
        mid_block_scale_factor=1.5,
        flip_sin_to_cos=False,
        freq_shift=1,
        center_input_sample=True,
        sample_size=8,
    ),
}


def rand_like_init(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (diffusers zero-initialises nothing relevant, but be sure)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


@pytest.mark.parametrize("name", sorted(UNET_CONFIGS))
def test_unet(tmp_path, name):
    torch.manual_seed(0)
    config = UNET_CONFIGS[name]
    theirs = rand_like_init(diffusers.UNet2DConditionModel(**config), 1)
    theirs.save_pretrained(tmp_path)
    ours = UNet2DConditionModel.from_pretrained(tmp_path)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    channels, context = config.get("in_channels", 4), config["cross_attention_dim"]
    for size, t in (
        ((16, 16), 999),
        ((12, 20), torch.tensor(500)),
        ((16, 16), torch.tensor([0, 1])),
    ):
        x, ctx = torch.randn(2, channels, *size), torch.randn(2, 7, context)
        with torch.no_grad():
            torch.testing.assert_close(ours(x, t, ctx), theirs(x, t, ctx).sample, **TOL)


VAE_CONFIGS = {
    "sd1": dict(
        block_out_channels=(8, 16, 32, 32),
        norm_num_groups=8,
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    ),
    "other": dict(
        block_out_channels=(16, 32),
        norm_num_groups=4,
        layers_per_block=1,
        latent_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        in_channels=2,
        out_channels=5,
        use_quant_conv=False,
        mid_block_add_attention=False,
        scaling_factor=0.5,
    ),
}


@pytest.mark.parametrize("name", sorted(VAE_CONFIGS))
def test_vae(tmp_path, name):
    torch.manual_seed(0)
    config = VAE_CONFIGS[name]
    theirs = rand_like_init(diffusers.AutoencoderKL(**config), 2)
    theirs.save_pretrained(tmp_path)
    ours = AutoencoderKL.from_pretrained(tmp_path)
    assert ours.config.scaling_factor == theirs.config.scaling_factor
    x = torch.randn(2, config.get("in_channels", 3), 24, 32)
    with torch.no_grad():
        expected, got = theirs.encode(x).latent_dist, ours.encode(x)
        torch.testing.assert_close(got.mean, expected.mean, **TOL)
        torch.testing.assert_close(got.logvar, expected.logvar, **TOL)
        z = torch.randn_like(got.mean)
        torch.testing.assert_close(ours.decode(z), theirs.decode(z).sample, **TOL)
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        torch.testing.assert_close(got.sample(g1), expected.sample(g2), **TOL)


TEXT_CONFIGS = {
    "quick_gelu": dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=1000,
    ),
    "gelu": dict(
        hidden_size=24,
        intermediate_size=40,
        num_attention_heads=3,
        num_hidden_layers=3,
        vocab_size=700,
        hidden_act="gelu",
        max_position_embeddings=40,
        layer_norm_eps=1e-6,
    ),
}


@pytest.mark.parametrize("name", sorted(TEXT_CONFIGS))
@pytest.mark.parametrize("v4_prefix", [False, True])
def test_text_encoder(tmp_path, name, v4_prefix):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(**TEXT_CONFIGS[name])
    theirs = transformers.CLIPTextModel(config).eval()
    theirs.save_pretrained(tmp_path)
    if v4_prefix:  # transformers v4 layout (all SD 1.x hub files)
        state = load_file(tmp_path / "model.safetensors")
        state = {
            ("text_model." + k if not k.startswith("text_model.") else k): v
            for k, v in state.items()
        }
        save_file(state, tmp_path / "model.safetensors")
    ours = CLIPTextModel.from_pretrained(tmp_path)
    ids = torch.randint(0, config.vocab_size, (3, config.max_position_embeddings))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), theirs(ids).last_hidden_state, **TOL)


VISION_CONFIGS = {
    "quick_gelu": dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=30,
        patch_size=6,
        projection_dim=16,
    ),
    "gelu": dict(
        hidden_size=24,
        intermediate_size=20,
        num_attention_heads=2,
        num_hidden_layers=1,
        image_size=16,
        patch_size=4,
        projection_dim=8,
        hidden_act="gelu",
        num_channels=1,
    ),
}


@pytest.mark.parametrize("name", sorted(VISION_CONFIGS))
def test_vision_encoder(tmp_path, name):
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(**VISION_CONFIGS[name])
    theirs = transformers.CLIPVisionModelWithProjection(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = CLIPVisionModel.from_pretrained(tmp_path)
    x = torch.randn(2, config.num_channels, config.image_size, config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x).image_embeds, **TOL)


def test_full_clip_model_folder(tmp_path):
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=TEXT_CONFIGS["quick_gelu"],
        vision_config=VISION_CONFIGS["quick_gelu"],
        projection_dim=12,
    )
    theirs = transformers.CLIPModel(config).eval()
    theirs.save_pretrained(tmp_path)
    x, ids = torch.randn(2, 3, 30, 30), torch.randint(0, 1000, (2, 77))
    with torch.no_grad():
        image_embeds = theirs.visual_projection(theirs.vision_model(x).pooler_output)
        torch.testing.assert_close(
            CLIPVisionModel.from_pretrained(tmp_path)(x), image_embeds, **TOL
        )
        torch.testing.assert_close(
            CLIPTextModel.from_pretrained(tmp_path)(ids),
            theirs.text_model(ids).last_hidden_state,
            **TOL,
        )


PROMPTS = [
    "a photo of a cat",
    "A PHOTO of   a\tDOG!!",
    "",
    "the cat's toy, isn't it? it's 2023 & 42 cats...",
    "a photo of a cat " * 30,  # longer than 77 tokens
    "naïve café — émoji 🐱 and 日本語",
    "<|startoftext|>a cat<|endoftext|> dog",
    "don't we'll they're I'm you've she'd",
    "zebra-striped hummingbird; 3.14159",
]


def test_tokenizer_ids(tmp_path):
    words = "a photo of the cat dog toy it is isn't 's 't red painting zebra striped".split()  # noqa: SIM905
    write_vocab_files(tmp_path, words + ["cats", "ca", "ph", "in", "ing", "er", "th", "re"])
    ours = CLIPTokenizer.from_pretrained(tmp_path)
    theirs = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    expected = theirs(
        PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    assert torch.equal(ours(PROMPTS), expected.input_ids)
    for prompt in PROMPTS:
        assert ours.encode(prompt) == theirs(prompt).input_ids
    assert ours.add_tokens(["<cat-toy>"]) == [len(theirs)] and theirs.add_tokens(["<cat-toy>"]) == 1
    edited = ["a <cat-toy> photo", "A <Cat-Toy>,<cat-toy> photo"]
    expected = theirs(
        edited, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    assert torch.equal(ours(edited), expected.input_ids)


def test_compvis_names_agree_with_diffusers_converter():
    """Our diffusers -> LDM naming, fed to diffusers' own LDM -> diffusers converters, must give
    back the original keys and tensors (SD 1.x-shaped tiny UNet and VAE)."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    from diffrepro.core.models.autoencoder_kl import AutoencoderKLConfig
    from diffrepro.core.models.compvis import unet_key_to_compvis, vae_key_to_compvis
    from diffrepro.core.models.sd_unet import UNet2DConditionConfig

    unet_config = UNET_CONFIGS["sd1"]
    unet = diffusers.UNet2DConditionModel(**unet_config)
    ours = UNet2DConditionConfig(**unet_config)
    ldm = {
        "model.diffusion_model." + unet_key_to_compvis(k, ours): v
        for k, v in unet.state_dict().items()
    }
    back = convert_ldm_unet_checkpoint(ldm, dict(unet.config))
    assert back.keys() == unet.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in unet.state_dict().items())

    vae_config = VAE_CONFIGS["sd1"]
    vae = diffusers.AutoencoderKL(**vae_config)
    ours_vae = AutoencoderKLConfig(**vae_config)
    ldm = {}
    for key, value in vae.state_dict().items():
        name = vae_key_to_compvis(key, ours_vae)
        ldm["first_stage_model." + name] = (
            value[:, :, None, None] if ".attn_1." in name and value.ndim == 2 else value
        )
    back = convert_ldm_vae_checkpoint(ldm, dict(vae.config))
    assert back.keys() == vae.state_dict().keys()
    assert all(torch.equal(back[k].reshape(v.shape), v) for k, v in vae.state_dict().items())


def test_tokenizer_from_transformers_v5_folder(tmp_path):
    """transformers v5 saves only tokenizer.json; added (Textual Inversion) tokens come along."""
    write_vocab_files(tmp_path / "files", ["a", "photo", "of", "cat"])
    theirs = transformers.CLIPTokenizer(
        str(tmp_path / "files" / "vocab.json"),
        str(tmp_path / "files" / "merges.txt"),
        model_max_length=77,
    )
    theirs.add_tokens(["<cat-toy>", "<style>"])
    theirs.save_pretrained(tmp_path / "saved")
    assert not (tmp_path / "saved" / "vocab.json").exists()
    ours = CLIPTokenizer.from_pretrained(tmp_path / "saved")
    prompts = ["a <style> photo of a <cat-toy>", "A PHOTO of a cat!", ""]
    expected = theirs(
        prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    assert torch.equal(ours(prompts), expected.input_ids)
