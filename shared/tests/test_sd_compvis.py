"""CompVis single-file import: known SD 1.x key names, a tiny single-file round trip, errors;
and the SD 1.5 key/parameter counts of our modules (built on the meta device)."""

import pytest
import torch
from safetensors.torch import save_file

from diffrepro.core.models.autoencoder_kl import AutoencoderKL, AutoencoderKLConfig
from diffrepro.core.models.clip import CLIPTextConfig, CLIPTextModel
from diffrepro.core.models.compvis import (
    SD1_TEXT,
    SD1_UNET,
    SD1_VAE,
    load_compvis_checkpoint,
    unet_key_to_compvis,
    vae_key_to_compvis,
)
from diffrepro.core.models.sd_unet import UNet2DConditionConfig, UNet2DConditionModel

torch.set_num_threads(1)


def test_sd15_sizes_match_the_published_counts():
    with torch.device("meta"):
        models = [UNet2DConditionModel(SD1_UNET), AutoencoderKL(SD1_VAE), CLIPTextModel(SD1_TEXT)]
    counts = [(len(m.state_dict()), sum(p.numel() for p in m.parameters())) for m in models]
    assert counts == [(686, 859_520_964), (248, 83_653_863), (196, 123_060_480)]


@pytest.mark.parametrize(
    "ours, ldm",
    [
        ("time_embedding.linear_2.bias", "time_embed.2.bias"),
        ("down_blocks.0.resnets.1.time_emb_proj.weight", "input_blocks.2.0.emb_layers.1.weight"),
        ("down_blocks.1.attentions.0.proj_in.weight", "input_blocks.4.1.proj_in.weight"),
        ("down_blocks.2.downsamplers.0.conv.bias", "input_blocks.9.0.op.bias"),
        ("down_blocks.3.resnets.1.conv2.weight", "input_blocks.11.0.out_layers.3.weight"),
        (
            "mid_block.attentions.0.transformer_blocks.0.ff.net.2.weight",
            "middle_block.1.transformer_blocks.0.ff.net.2.weight",
        ),
        ("mid_block.resnets.1.norm1.weight", "middle_block.2.in_layers.0.weight"),
        ("up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight"),
        ("up_blocks.2.upsamplers.0.conv.weight", "output_blocks.8.2.conv.weight"),
        ("up_blocks.3.resnets.2.conv_shortcut.weight", "output_blocks.11.0.skip_connection.weight"),
        (
            "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight",
            "output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight",
        ),
        ("conv_norm_out.bias", "out.0.bias"),
    ],
)
def test_unet_names(ours, ldm):
    assert unet_key_to_compvis(ours, SD1_UNET) == ldm


@pytest.mark.parametrize(
    "ours, ldm",
    [
        (
            "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
            "encoder.down.1.block.0.nin_shortcut.weight",
        ),
        (
            "encoder.down_blocks.2.downsamplers.0.conv.weight",
            "encoder.down.2.downsample.conv.weight",
        ),
        ("encoder.mid_block.attentions.0.to_out.0.bias", "encoder.mid.attn_1.proj_out.bias"),
        ("decoder.mid_block.resnets.1.norm2.weight", "decoder.mid.block_2.norm2.weight"),
        ("decoder.up_blocks.0.upsamplers.0.conv.weight", "decoder.up.3.upsample.conv.weight"),
        ("decoder.up_blocks.3.resnets.2.conv1.bias", "decoder.up.0.block.2.conv1.bias"),
        ("decoder.conv_norm_out.weight", "decoder.norm_out.weight"),
        ("post_quant_conv.weight", "post_quant_conv.weight"),
    ],
)
def test_vae_names(ours, ldm):
    assert vae_key_to_compvis(ours, SD1_VAE) == ldm


TINY_UNET = UNet2DConditionConfig(
    block_out_channels=(8, 16),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=2,
    norm_num_groups=4,
    cross_attention_dim=12,
    attention_head_dim=2,
)
TINY_VAE = AutoencoderKLConfig(
    block_out_channels=(8, 16),
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    norm_num_groups=4,
)
TINY_TEXT = CLIPTextConfig(
    vocab_size=50, hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2
)


def random_models():
    torch.manual_seed(0)
    models = UNet2DConditionModel(TINY_UNET), AutoencoderKL(TINY_VAE), CLIPTextModel(TINY_TEXT)
    with torch.no_grad():
        for model in models:
            for p in model.parameters():
                p.normal_(0, 0.2)
    return [m.eval() for m in models]


def write_single_file(path, unet, vae, text, *, ema_scale=None):
    state = {
        "model.diffusion_model." + unet_key_to_compvis(k, TINY_UNET): v
        for k, v in unet.state_dict().items()
    }
    for key, value in vae.state_dict().items():
        name = vae_key_to_compvis(key, TINY_VAE)
        state["first_stage_model." + name] = (
            value[:, :, None, None] if ".attn_1." in name and value.ndim == 2 else value
        )
    state.update(
        {"cond_stage_model.transformer.text_model." + k: v for k, v in text.state_dict().items()}
    )
    if ema_scale is not None:
        for key, value in unet.state_dict().items():
            flat = ("diffusion_model." + unet_key_to_compvis(key, TINY_UNET)).replace(".", "")
            state["model_ema." + flat] = value * ema_scale
    state["betas"] = torch.linspace(1e-4, 0.02, 10)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def test_single_file_round_trip(tmp_path):
    unet, vae, text = random_models()
    path = tmp_path / "tiny.safetensors"
    write_single_file(path, unet, vae, text, ema_scale=2.0)
    configs = {"unet_config": TINY_UNET, "vae_config": TINY_VAE, "text_config": TINY_TEXT}
    unet2, vae2, text2 = load_compvis_checkpoint(path, **configs)
    for a, b in ((unet, unet2), (vae, vae2), (text, text2)):
        expected, got = a.state_dict(), b.state_dict()
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    ema_unet, _, _ = load_compvis_checkpoint(path, use_ema=True, **configs)
    assert torch.equal(ema_unet.conv_in.weight, 2 * unet.conv_in.weight)


def test_single_file_errors(tmp_path):
    unet, vae, text = random_models()
    path = tmp_path / "tiny.safetensors"
    write_single_file(path, unet, vae, text)
    with pytest.raises(ValueError, match="cross-attention width 12"):
        load_compvis_checkpoint(path)  # SD 1.x config expects 768
    with pytest.raises(ValueError, match="missing keys"):
        load_compvis_checkpoint(
            path, unet_config=TINY_UNET, vae_config=TINY_VAE, text_config=TINY_TEXT, use_ema=True
        )
    with pytest.raises(FileNotFoundError):
        load_compvis_checkpoint(tmp_path / "absent.safetensors")


def test_bundle_from_a_single_file_and_a_tokenizer_folder(tmp_path):
    import dataclasses

    from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER, StableDiffusion
    from diffrepro.core.tokenizer import write_vocab_files

    vocab = write_vocab_files(tmp_path / "tokenizer", ["a", "cat"])
    text_config = dataclasses.replace(TINY_TEXT, vocab_size=len(vocab))
    unet, vae, _ = random_models()
    text = CLIPTextModel(text_config).eval()
    path = tmp_path / "tiny.safetensors"
    write_single_file(path, unet, vae, text)
    configs = {"unet_config": TINY_UNET, "vae_config": TINY_VAE, "text_config": text_config}
    sd = StableDiffusion.from_compvis(path, tmp_path / "tokenizer", dtype=torch.float64, **configs)
    assert sd.scheduler == SD1_SCHEDULER and sd.dtype == torch.float64
    assert torch.equal(sd.unet.conv_in.weight, unet.conv_in.weight.double())
    assert sd.encode_prompt("a cat").shape == (1, 77, 12)
    with pytest.raises(FileNotFoundError, match="tokenizer folder"):
        StableDiffusion.from_compvis(path, tmp_path / "absent", **configs)
