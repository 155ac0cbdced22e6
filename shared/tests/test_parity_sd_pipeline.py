"""Our StableDiffusion bundle against diffusers' StableDiffusionPipeline with a DDIM scheduler
(same tiny folder, same latents): guided DDIM sampling and DDIM inversion agree within 1e-5."""

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffusers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from diffrepro.core.models.stable_diffusion import StableDiffusion  # noqa: E402
from diffrepro.core.tokenizer import write_vocab_files  # noqa: E402

pytestmark = pytest.mark.parity
torch.set_num_threads(1)

SD15_SCHEDULER = dict(
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    set_alpha_to_one=False,
    steps_offset=1,
    clip_sample=False,
)
# v-prediction, trailing grid, alpha-bar 1 at the end, x0 clipping: the other branches
OTHER_SCHEDULER = dict(
    beta_schedule="linear",
    beta_start=0.0001,
    beta_end=0.02,
    set_alpha_to_one=True,
    steps_offset=0,
    clip_sample=True,
    clip_sample_range=0.5,
    prediction_type="v_prediction",
    timestep_spacing="trailing",
)


def build_pipeline(folder, scheduler_config: dict):
    torch.manual_seed(0)
    vocab = write_vocab_files(folder / "vocab", ["a", "photo", "of", "cat", "dog", "red"])
    tokenizer = transformers.CLIPTokenizer(
        str(folder / "vocab" / "vocab.json"),
        str(folder / "vocab" / "merges.txt"),
        model_max_length=77,
    )
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            hidden_size=16,
            intermediate_size=24,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=len(vocab),
        )
    ).eval()
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=16,
        attention_head_dim=2,
        sample_size=8,
    ).eval()
    with torch.no_grad():  # make the conditioning matter: break the near-zero init of conv_out
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
        latent_channels=4,
    ).eval()
    scheduler = diffusers.DDIMScheduler(**scheduler_config)
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(folder / "sd")
    return pipe


@pytest.mark.parametrize("scheduler", [SD15_SCHEDULER, OTHER_SCHEDULER], ids=["sd15", "other"])
def test_guided_ddim_matches_diffusers(tmp_path, scheduler):
    pipe = build_pipeline(tmp_path, scheduler)
    ours = StableDiffusion.load(tmp_path / "sd")
    prompts = ["a photo of a cat", "a red dog"]
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = pipe(
            prompts,
            num_inference_steps=4,
            guidance_scale=6.0,
            latents=latents,
            output_type="latent",
        ).images
        got = ours.sample(prompts, num_steps=4, guidance_scale=6.0, latents=latents)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        pixels = pipe.vae.decode(expected / pipe.vae.config.scaling_factor).sample
        torch.testing.assert_close(ours.decode_latents(expected), pixels, atol=1e-5, rtol=1e-4)
        mean = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
        torch.testing.assert_close(ours.encode_images(pixels), mean, atol=1e-5, rtol=1e-4)


def test_ddim_inversion_matches_diffusers(tmp_path):
    pipe = build_pipeline(tmp_path, SD15_SCHEDULER)
    ours = StableDiffusion.load(tmp_path / "sd")
    inverse = diffusers.DDIMInverseScheduler.from_config(pipe.scheduler.config)
    inverse.set_timesteps(5)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        context = pipe.encode_prompt("a photo of a cat", "cpu", 1, False)[0]
        expected = z
        for t in inverse.timesteps:
            eps = pipe.unet(expected, t, context).sample
            expected = inverse.step(eps, t, expected).prev_sample
        got = ours.invert(z, "a photo of a cat", num_steps=5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
