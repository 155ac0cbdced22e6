"""The zoo's text-to-image folder opens in diffusers / transformers as a real SD 1.x folder:
same token ids, text encoder states, UNet and VAE outputs (tiny entry, nox -s parity)."""

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffusers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from diffrepro.core import zoo  # noqa: E402
from diffrepro.core.zoo.tiny import tiny_entries  # noqa: E402

pytestmark = pytest.mark.parity


def test_zoo_t2i_folder_loads_in_diffusers(tmp_path):
    for entry in tiny_entries():
        zoo.register(entry, replace=True)
    folder = zoo.path("tiny-emoji-t2i", root=tmp_path)
    ours = zoo.load("tiny-emoji-t2i", root=tmp_path)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        folder, safety_checker=None, requires_safety_checker=False
    )
    assert isinstance(pipe.scheduler, diffusers.DDIMScheduler)
    assert isinstance(pipe.text_encoder, transformers.CLIPTextModel)
    prompts = ["an emoji of a dog face", "red apple", ""]
    theirs_ids = pipe.tokenizer(
        prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True
    ).input_ids
    assert torch.equal(torch.tensor(theirs_ids), ours.tokenizer(prompts))
    ids = ours.tokenizer(prompts)
    with torch.no_grad():
        theirs_text = pipe.text_encoder(ids)[0]
        ours_text = ours.text_encoder(ids)
        assert torch.allclose(theirs_text, ours_text, atol=1e-5)
        z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
        t = torch.tensor([1, 500, 999])
        theirs_eps = pipe.unet(z, t, encoder_hidden_states=ours_text).sample
        assert torch.allclose(theirs_eps, ours.unet(z, t, ours_text), atol=1e-5)
        theirs_x = pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample
        assert torch.allclose(theirs_x, ours.decode_latents(z), atol=1e-5)
    assert pipe.vae.config.scaling_factor == ours.vae.config.scaling_factor
