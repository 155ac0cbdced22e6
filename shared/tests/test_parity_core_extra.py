"""Extra parity of the core with diffusers / transformers, on configurations the component parity
tests do not use: more SD UNet / VAE / CLIP layouts at odd sizes (1e-5 in fp32), the tokenizer on
tricky strings, beta schedules, and whole DDIM / DDPM sampling loops."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffusers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from diffrepro.core.models.autoencoder_kl import AutoencoderKL  # noqa: E402
from diffrepro.core.models.clip import CLIPTextModel, CLIPVisionModel  # noqa: E402
from diffrepro.core.models.sd_unet import UNet2DConditionModel  # noqa: E402
from diffrepro.core.samplers import invert_ddim, sample_ddim, sample_ddpm  # noqa: E402
from diffrepro.core.schedules import (  # noqa: E402
    Schedule,
    cosine_betas,
    linear_betas,
    scaled_linear_betas,
    spaced_timesteps,
)
from diffrepro.core.tokenizer import CLIPTokenizer, write_vocab_files  # noqa: E402

pytestmark = pytest.mark.parity
torch.set_num_threads(1)
TOL = {"atol": 1e-5, "rtol": 1e-4}


def randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


UNET_CONFIGS = {
    # four levels, one layer each, per-level head counts
    "four_levels": dict(
        block_out_channels=(8, 16, 16, 24),
        norm_num_groups=8,
        layers_per_block=1,
        cross_attention_dim=16,
        attention_head_dim=(1, 2, 2, 4),
    ),
    # cross-attention everywhere, linear projections, only_cross_attention as one bool (the mid
    # block ignores it), mid_block_only_cross_attention set
    "all_cross_only_cross": dict(
        block_out_channels=(16, 16, 32),
        norm_num_groups=4,
        cross_attention_dim=16,
        attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3,
        use_linear_projection=True,
        only_cross_attention=True,
        mid_block_only_cross_attention=True,
    ),
    # per-level layers and transformer depths, no mid block, 1x1 conv in/out, other eps
    "per_level_depths_no_mid": dict(
        block_out_channels=(16, 32),
        norm_num_groups=8,
        layers_per_block=(2, 1),
        cross_attention_dim=(16, 16),
        attention_head_dim=(2, 4),
        down_block_types=("CrossAttnDownBlock2D",) * 2,
        up_block_types=("CrossAttnUpBlock2D",) * 2,
        transformer_layers_per_block=(1, 2),
        mid_block_type=None,
        conv_in_kernel=1,
        conv_out_kernel=1,
        downsample_padding=0,
        norm_eps=1e-3,
    ),
}


@pytest.mark.parametrize("name", list(UNET_CONFIGS))
def test_unet_more_layouts_at_odd_latent_sizes(tmp_path, name):
    torch.manual_seed(0)
    theirs = randomized(diffusers.UNet2DConditionModel(**UNET_CONFIGS[name]), 1)
    theirs.save_pretrained(tmp_path)
    ours = UNet2DConditionModel.from_pretrained(tmp_path)
    t = torch.tensor([3, 700])
    for size in ((9, 13), (5, 7)):
        x, context = torch.randn(2, 4, *size), torch.randn(2, 5, 16)
        with torch.no_grad():
            torch.testing.assert_close(ours(x, t, context), theirs(x, t, context).sample, **TOL)


VAE_CONFIGS = {
    "three_blocks_latent8": dict(
        block_out_channels=(8, 16, 16),
        norm_num_groups=4,
        layers_per_block=1,
        latent_channels=8,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
    ),
    "two_groups_two_layers": dict(
        block_out_channels=(6, 12),
        norm_num_groups=2,
        layers_per_block=2,
        latent_channels=2,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    ),
    "one_block_no_post_quant": dict(
        block_out_channels=(8,),
        norm_num_groups=4,
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        use_post_quant_conv=False,
    ),
}


@pytest.mark.parametrize("name", list(VAE_CONFIGS))
def test_vae_more_layouts_at_odd_sizes(tmp_path, name):
    torch.manual_seed(0)
    theirs = randomized(diffusers.AutoencoderKL(**VAE_CONFIGS[name]), 2)
    theirs.save_pretrained(tmp_path)
    ours = AutoencoderKL.from_pretrained(tmp_path)
    x = torch.randn(2, 3, 13, 17)
    with torch.no_grad():
        expected, got = theirs.encode(x).latent_dist, ours.encode(x)
        torch.testing.assert_close(got.mean, expected.mean, **TOL)
        torch.testing.assert_close(got.logvar, expected.logvar, **TOL)
        z = torch.randn_like(got.mean)
        torch.testing.assert_close(ours.decode(z), theirs.decode(z).sample, **TOL)


@pytest.mark.parametrize(
    "config, with_projection",
    [
        (dict(hidden_size=24, intermediate_size=30, num_attention_heads=2, num_hidden_layers=4,
              vocab_size=300, hidden_act="gelu", projection_dim=8, max_position_embeddings=20),
         True),
        (dict(hidden_size=16, intermediate_size=16, num_attention_heads=1, num_hidden_layers=1,
              vocab_size=100, hidden_act="gelu_new", layer_norm_eps=1e-3), False),
    ],
    ids=["gelu_4_layers_with_projection", "gelu_new_1_layer"],
)  # fmt: skip
def test_text_encoder_more_configs(tmp_path, config, with_projection):
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(**config)
    cls = (
        transformers.CLIPTextModelWithProjection if with_projection else transformers.CLIPTextModel
    )
    theirs = cls(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = CLIPTextModel.from_pretrained(tmp_path)
    for length in (config.max_position_embeddings, 7):
        ids = torch.randint(0, config.vocab_size, (2, length))
        with torch.no_grad():
            torch.testing.assert_close(ours(ids), theirs(ids).last_hidden_state, **TOL)


@pytest.mark.parametrize(
    "config",
    [
        dict(hidden_size=16, intermediate_size=20, num_attention_heads=2, num_hidden_layers=2,
             image_size=21, patch_size=7, projection_dim=12),
        dict(hidden_size=8, intermediate_size=8, num_attention_heads=1, num_hidden_layers=3,
             image_size=8, patch_size=2, projection_dim=4, hidden_act="gelu",
             layer_norm_eps=1e-3),
    ],
    ids=["patch7_image21", "patch2_image8_gelu"],
)  # fmt: skip
def test_vision_encoder_more_configs(tmp_path, config):
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(**config)
    theirs = transformers.CLIPVisionModelWithProjection(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = CLIPVisionModel.from_pretrained(tmp_path)
    x = torch.randn(2, 3, config.image_size, config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x).image_embeds, **TOL)


TRICKY_PROMPTS = [
    "e\u0301cole CAFE\u0301 café naïve",  # combining accents (NFC) and precomposed ones
    "ﬁne ½ ² ǅ ﬀ Å Ω",  # ligatures and compatibility characters
    "İstanbul ΣΑΣ straße",  # lowercasing that changes length
    "a\u00a0photo\u200bof  \t the\n\n\ncat\r\n",  # odd whitespace
    "👍🏽 🇯🇵 👨‍👩‍👧 🐱🐱",  # emoji sequences
    "1,000,000.50 $5 10% #tag @user 123456789 3.14",
    "a--b__c..d don'T WE'LL <|endoftext|>",
    "中文，标点。日本語",
    "🐱" * 80,  # truncated to 77
    "word " * 80 + "end",
]


def test_tokenizer_tricky_strings(tmp_path):
    words = "a photo of the cat dog café naïve 42 3 , . ! ' s t é e word end".split()  # noqa: SIM905
    write_vocab_files(tmp_path, words + ["ca", "ph", "in", "ing", "er", "th", "re"])
    ours = CLIPTokenizer.from_pretrained(tmp_path)
    theirs = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    expected = theirs(
        TRICKY_PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    assert torch.equal(ours(TRICKY_PROMPTS), expected.input_ids)
    for prompt in TRICKY_PROMPTS:
        assert ours.encode(prompt) == theirs(prompt).input_ids, prompt


def test_tokenizer_with_sd2_pad_token_splits_it_out_of_prompts(tmp_path):
    """SD 2.x pads with "!", a special token: transformers matches it inside prompts too."""
    import json

    write_vocab_files(tmp_path, ["a", "photo", "of", "cat", "wow", "!!", "!?"])
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"pad_token": "!"}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    ours = CLIPTokenizer.from_pretrained(tmp_path)
    theirs = transformers.CLIPTokenizer.from_pretrained(tmp_path)
    prompts = ["wow!!", "!a photo", "a ! cat", "cat!? wow!", "a photo of a cat"]
    expected = theirs(
        prompts, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    assert theirs.pad_token_id == ours.pad_id
    assert torch.equal(ours(prompts), expected.input_ids)


OUR_BETAS = {
    "linear": lambda t, c: linear_betas(t, c.beta_start, c.beta_end),
    "scaled_linear": lambda t, c: scaled_linear_betas(t, c.beta_start, c.beta_end),
    "squaredcos_cap_v2": lambda t, c: cosine_betas(t),
}


@pytest.mark.parametrize("num_train_timesteps", [1000, 37])
@pytest.mark.parametrize("beta_schedule", list(OUR_BETAS))
def test_beta_schedules_match(beta_schedule, num_train_timesteps):
    ref = diffusers.DDPMScheduler(
        beta_schedule=beta_schedule, num_train_timesteps=num_train_timesteps
    )
    ours = Schedule.from_betas(OUR_BETAS[beta_schedule](num_train_timesteps, ref.config))
    np.testing.assert_allclose(ours.betas, ref.betas.double().numpy(), rtol=1e-6)
    # diffusers multiplies in float32; the capped cosine's last factor 1 - 0.999 loses 5 digits
    rtol = 2e-5 if beta_schedule == "squaredcos_cap_v2" else 1e-6
    np.testing.assert_allclose(ours.alphas_cumprod, ref.alphas_cumprod.double().numpy(), rtol=rtol)


def toy_model(learned_variance: bool = False):
    """A deterministic stand-in for a network that depends on x and t."""

    def model(x, t):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1).expand(x.shape[0])
        out = 0.3 * x + 0.2 * torch.sin(2 * x + t.reshape(-1, 1, 1, 1) / 300)
        return torch.cat([out, torch.tanh(x)], 1) if learned_variance else out

    return model


PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def _relative_error(got, expected):
    return ((got - expected).abs().max() / max(1.0, expected.abs().max().item())).item()


@pytest.mark.parametrize(
    "beta_schedule, train_steps, steps, spacing, offset, alpha_one, clip, prediction, eta",
    [
        ("linear", 1000, 30, "leading", 0, True, None, "epsilon", 0.0),
        ("scaled_linear", 1000, 10, "trailing", 1, False, None, "epsilon", 1.0),
        ("squaredcos_cap_v2", 1000, 8, "trailing", 0, False, None, "v_prediction", 0.0),
        ("linear", 500, 17, "leading", 1, True, 2.0, "sample", 0.5),
    ],
)  # fmt: skip
def test_ddim_loop_matches(
    beta_schedule, train_steps, steps, spacing, offset, alpha_one, clip, prediction, eta
):
    ref = diffusers.DDIMScheduler(
        beta_schedule=beta_schedule, num_train_timesteps=train_steps, timestep_spacing=spacing,
        steps_offset=offset, set_alpha_to_one=alpha_one, clip_sample=clip is not None,
        clip_sample_range=clip or 1.0, prediction_type=prediction,
    )  # fmt: skip
    ref.set_timesteps(steps)
    sched = Schedule.from_alphas_cumprod(ref.alphas_cumprod)
    grid = spaced_timesteps(train_steps, steps, spacing, offset)
    np.testing.assert_array_equal(grid, ref.timesteps.numpy())
    model, x = toy_model(), torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    expected, g = x, torch.Generator().manual_seed(1)
    for t in ref.timesteps:
        expected = ref.step(model(expected, t), t, expected, eta=eta, generator=g).prev_sample
    got = sample_ddim(
        model, x, sched, timesteps=grid, eta=eta, prediction=PREDICTIONS[prediction],
        final_alpha_cumprod=1.0 if alpha_one else sched.alphas_cumprod[0], clip_x0=clip,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    assert _relative_error(got, expected) < 1e-5


@pytest.mark.parametrize(
    "beta_schedule, train_steps, steps, spacing, variance, prediction, clip",
    [
        ("linear", 1000, None, "leading", "fixed_small", "epsilon", None),  # all 1000 steps
        ("squaredcos_cap_v2", 1000, 25, "leading", "fixed_large", "epsilon", 1.0),
        ("linear", 1000, 30, "leading", "learned_range", "v_prediction", None),
        ("scaled_linear", 200, 7, "linspace", "fixed_small", "sample", None),
    ],
)  # fmt: skip
def test_ddpm_loop_matches(beta_schedule, train_steps, steps, spacing, variance, prediction, clip):
    ref = diffusers.DDPMScheduler(
        beta_schedule=beta_schedule, num_train_timesteps=train_steps, timestep_spacing=spacing,
        variance_type=variance, prediction_type=prediction, clip_sample=clip is not None,
    )  # fmt: skip
    sched = Schedule.from_alphas_cumprod(ref.alphas_cumprod)
    ref.set_timesteps(steps or train_steps)
    if steps:
        sched = sched.respace(spaced_timesteps(train_steps, steps, spacing))
    model = toy_model(variance == "learned_range")
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    expected, g = x, torch.Generator().manual_seed(1)
    for t in ref.timesteps:
        expected = ref.step(model(expected, t), t, expected, generator=g).prev_sample
    got = sample_ddpm(
        model, x, sched, variance=variance, prediction=PREDICTIONS[prediction], clip_x0=clip,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    assert _relative_error(got, expected) < 2e-5


@pytest.mark.parametrize(
    "beta_schedule, steps, spacing, offset, alpha_one, prediction",
    [
        ("scaled_linear", 8, "trailing", 0, False, "v_prediction"),
        ("squaredcos_cap_v2", 20, "leading", 0, True, "epsilon"),
        ("linear", 13, "leading", 1, False, "sample"),  # x0 from alpha-bar 1 would be 0/0
    ],
)  # fmt: skip
def test_ddim_inversion_loop_matches(beta_schedule, steps, spacing, offset, alpha_one, prediction):
    ref = diffusers.DDIMInverseScheduler(
        beta_schedule=beta_schedule, timestep_spacing=spacing, steps_offset=offset,
        set_alpha_to_one=alpha_one, prediction_type=prediction, clip_sample=False,
    )  # fmt: skip
    ref.set_timesteps(steps)
    sched = Schedule.from_alphas_cumprod(ref.alphas_cumprod)
    model, x = toy_model(), torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    expected = x
    for t in ref.timesteps:
        expected = ref.step(model(expected, t), t, expected).prev_sample
    got = invert_ddim(
        model, x, sched, timesteps=spaced_timesteps(1000, steps, spacing, offset),
        final_alpha_cumprod=1.0 if alpha_one else sched.alphas_cumprod[0],
        prediction=PREDICTIONS[prediction],
    )  # fmt: skip
    assert _relative_error(got, expected) < 1e-5


def _build_pipeline():
    """``build_pipeline`` of test_parity_sd_pipeline.py (a tiny saved SD folder)."""
    path = Path(__file__).with_name("test_parity_sd_pipeline.py")
    spec = importlib.util.spec_from_file_location("_sd_pipeline_parity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_pipeline


def test_pipeline_default_non_square_size_eta_and_negative_prompts(tmp_path):
    from diffrepro.core.models.stable_diffusion import StableDiffusion

    pipe = _build_pipeline()(tmp_path, {"steps_offset": 1, "clip_sample": False})
    pipe.unet.register_to_config(sample_size=[8, 12])  # (height, width) in latent cells
    pipe.save_pretrained(tmp_path / "sd")
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(tmp_path / "sd").to("cpu")
    pipe.set_progress_bar_config(disable=True)
    ours = StableDiffusion.load(tmp_path / "sd")
    prompts, negatives = ["a photo of a cat", "a red dog"], ["dog", "a photo"]
    kwargs = dict(num_inference_steps=7, guidance_scale=3.0, eta=0.5)
    with torch.no_grad():
        expected = pipe(
            prompts, negative_prompt=negatives, output_type="latent",
            generator=torch.Generator().manual_seed(4), **kwargs,
        ).images  # fmt: skip
        got = ours.sample(
            prompts, negative_prompt=negatives, num_steps=7, guidance_scale=3.0, eta=0.5,
            generator=torch.Generator().manual_seed(4),
        )  # fmt: skip
    assert got.shape == expected.shape == (2, 4, 8, 12)
    torch.testing.assert_close(got, expected, **TOL)
