"""Our embedding files against diffusers' ``load_textual_inversion`` on a tiny random pipeline,
both ways: files we write load into diffusers with the same rows and text-encoder outputs, and
what diffusers writes (the example script's ``learned_embeds`` files, and a whole pipeline saved
after loading an embedding) loads into ours with the same outputs."""

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import diffusers  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from diffrepro.core.models.stable_diffusion import StableDiffusion  # noqa: E402
from diffrepro.core.tokenizer import write_vocab_files  # noqa: E402
from diffrepro.textual_inversion.embeds import load_embeds, save_placeholder  # noqa: E402
from diffrepro.textual_inversion.formats import read_embeds, save_embeds  # noqa: E402
from diffrepro.textual_inversion.placeholders import (  # noqa: E402
    add_placeholder,
    expand_prompt,
    token_table,
)

pytestmark = pytest.mark.parity
torch.set_num_threads(1)
WORDS = ["a", "photo", "of", "cat", "dog", "red", "toy"]
PROMPT = "a photo of <tok> dog"


def build_pipeline(folder):
    torch.manual_seed(0)
    vocab = write_vocab_files(folder / "vocab", WORDS)
    tokenizer = transformers.CLIPTokenizer(
        str(folder / "vocab" / "vocab.json"), str(folder / "vocab" / "merges.txt")
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
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4,
        latent_channels=4,
    ).eval()
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=diffusers.DDIMScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "sd")
    return pipe


def diffusers_context(pipe, prompt):
    text = pipe.maybe_convert_prompt(prompt, pipe.tokenizer)
    ids = pipe.tokenizer(
        text, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return ids, pipe.text_encoder(ids)[0]


def our_context(sd, prompt, placeholders):
    ids = sd.tokenizer(expand_prompt(prompt, placeholders))
    with torch.no_grad():
        return ids, sd.text_encoder(ids)


@pytest.mark.parametrize(
    "fmt, name", [("safetensors", "e.safetensors"), ("bin", "e.bin"), ("a1111", "e.pt")]
)
@pytest.mark.parametrize("n", [1, 3])
def test_our_files_load_into_diffusers(tmp_path, fmt, name, n):
    pipe = build_pipeline(tmp_path)
    sd = StableDiffusion.load(tmp_path / "sd")
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="toy", num_vectors=n)
    with torch.no_grad():
        token_table(sd.text_encoder)[list(p.ids)] = torch.randn(n, 16)
    path = save_placeholder(sd, p, tmp_path / name, format=fmt)
    pipe.load_textual_inversion(str(path))
    expected_ids, expected = diffusers_context(pipe, PROMPT)
    got_ids, got = our_context(sd, PROMPT, [p])
    assert torch.equal(got_ids, expected_ids)
    table = pipe.text_encoder.get_input_embeddings().weight
    assert torch.equal(table[list(p.ids)], token_table(sd.text_encoder)[list(p.ids)])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 2])
def test_diffusers_example_files_load_into_ours(tmp_path, n):
    """The example script's save_progress: {token: rows} as safetensors (metadata format=pt)
    or torch.save; here the rows come from a pipeline diffusers loaded them into."""
    pipe = build_pipeline(tmp_path)
    rows = torch.randn(n, 16)
    pipe.load_textual_inversion(rows if n > 1 else rows[0], token="<tok>")
    ids = pipe.tokenizer.convert_tokens_to_ids(["<tok>"] + [f"<tok>_{i}" for i in range(1, n)])
    learned = pipe.text_encoder.get_input_embeddings().weight[min(ids) : max(ids) + 1]
    learned = learned.detach().clone()
    safetensors.torch.save_file(
        {"<tok>": learned}, str(tmp_path / "learned_embeds.safetensors"), metadata={"format": "pt"}
    )
    torch.save({"<tok>": learned}, tmp_path / "learned_embeds.bin")
    _, expected = diffusers_context(pipe, PROMPT)
    for name in ("learned_embeds.safetensors", "learned_embeds.bin"):
        sd = StableDiffusion.load(tmp_path / "sd")
        p = load_embeds(sd, tmp_path / name)
        assert torch.equal(read_embeds(tmp_path / name)[1], learned)
        torch.testing.assert_close(our_context(sd, PROMPT, [p])[1], expected, atol=1e-5, rtol=1e-5)


def test_pipeline_saved_by_diffusers_with_an_embedding_loads_into_ours(tmp_path):
    pipe = build_pipeline(tmp_path)
    save_embeds(tmp_path / "e.safetensors", "<tok>", torch.randn(1, 16))
    pipe.load_textual_inversion(str(tmp_path / "e.safetensors"))
    pipe.save_pretrained(tmp_path / "full")
    ours = StableDiffusion.load(tmp_path / "full")
    expected_ids, expected = diffusers_context(pipe, PROMPT)
    got_ids, got = our_context(ours, PROMPT, [])
    assert torch.equal(got_ids, expected_ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
