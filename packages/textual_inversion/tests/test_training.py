import dataclasses

import pytest
import torch

from diffrepro.core.finetune import ImageLatents, denoising_loss
from diffrepro.textual_inversion.config import PRESETS
from diffrepro.textual_inversion.formats import read_embeds
from diffrepro.textual_inversion.placeholders import add_placeholder, get_rows, token_table
from diffrepro.textual_inversion.templates import OBJECT_TEMPLATES, STYLE_TEMPLATES
from diffrepro.textual_inversion.training import (
    LearnedRows,
    Splice,
    make_loss_fn,
    scaled_lr,
    spliced,
    train_embedding,
)

TINY = PRESETS["tiny"]


def test_lr_scaling_rule():
    assert scaled_lr(5e-3, 4, 1, 2, True) == pytest.approx(0.04)  # the paper's 2 GPUs x 4
    assert scaled_lr(5e-4, 1, 4, 1, True) == pytest.approx(2e-3)  # the diffusers README
    assert scaled_lr(5e-3, 2, 3, 5, True) == pytest.approx(5e-3 * 30)
    assert scaled_lr(5e-3, 4, 2, 2, False) == 5e-3


@pytest.mark.parametrize("n", [1, 3])
def test_only_the_placeholder_rows_change_even_with_weight_decay(
    sd, images, tmp_path, n, state_hashes
):
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat", num_vectors=n)
    table = token_table(sd.text_encoder).detach().clone()
    unet, vae = state_hashes(sd.unet), state_hashes(sd.vae)
    text = {k: v for k, v in state_hashes(sd.text_encoder).items() if "token_embedding" not in k}
    cfg = dataclasses.replace(TINY, weight_decay=0.5, base_lr=0.05)
    result = train_embedding(sd, images, p, cfg, tmp_path)
    after = token_table(sd.text_encoder).detach()
    others = [i for i in range(after.shape[0]) if i not in p.ids]
    assert torch.equal(after[others], table[others])
    for i in p.ids:  # every vector moved (catches a mask that drops the last vector)
        assert not torch.equal(after[i], table[i])
    assert state_hashes(sd.unet) == unet and state_hashes(sd.vae) == vae
    now = {k: v for k, v in state_hashes(sd.text_encoder).items() if "token_embedding" not in k}
    assert now == text
    assert all(q.requires_grad for q in sd.unet.parameters())  # flags restored
    token, saved = read_embeds(result.embeds)
    assert token == "<tok>" and torch.equal(saved, after[list(p.ids)])
    assert result.lr == pytest.approx(0.05 * TINY.batch_size)


def test_weight_decay_on_the_whole_table_would_move_frozen_rows(sd):
    """The diffusers-example bug this package avoids: zero gradients do not stop AdamW."""
    table = torch.nn.Parameter(token_table(sd.text_encoder).detach().clone())
    opt = torch.optim.AdamW([table], lr=1e-2, weight_decay=1e-2)
    table.grad = torch.zeros_like(table)
    opt.step()
    assert not torch.equal(table[:10], token_table(sd.text_encoder)[:10])


def test_splice_equals_writing_the_rows_into_the_table(sd):
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat", num_vectors=2)
    ids = sd.tokenizer(["a photo of <tok> <tok>_1 dog", "<tok>_1 cat <tok>"])
    plain = sd.text_encoder(ids)
    rows = torch.randn(2, 32)
    with torch.no_grad(), spliced(sd.text_encoder, Splice(p, get_rows(sd.text_encoder, p))):
        assert torch.equal(sd.text_encoder(ids), plain)
    with torch.no_grad(), spliced(sd.text_encoder, Splice(p, rows)):
        hooked = sd.text_encoder(ids)
    assert torch.equal(sd.text_encoder(ids), plain)  # the hook is gone afterwards
    with torch.no_grad():
        token_table(sd.text_encoder)[list(p.ids)] = rows
        assert torch.equal(sd.text_encoder(ids), hooked)


def fixed_batch(sd, images, p):
    g = torch.Generator().manual_seed(0)
    latents = ImageLatents.encode(sd, images).sample(torch.arange(4), torch.zeros(4), sample=False)
    noise = torch.randn(latents.shape, generator=g)
    t = torch.tensor([100, 300, 500, 700])
    ids = sd.tokenizer([f"a photo of {p.text}"] * 4)
    return latents, noise, t, ids


def test_rows_move_and_the_loss_falls_on_a_fixed_batch(sd, images):
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat")
    latents, noise, t, ids = fixed_batch(sd, images, p)
    learned = LearnedRows(get_rows(sd.text_encoder, p))
    start = learned.weight.detach().clone()
    opt = torch.optim.Adam(learned.parameters(), lr=0.05)
    splice = Splice(p, learned.weight)
    sd.unet.requires_grad_(False)
    sd.text_encoder.requires_grad_(False)
    losses = []
    with spliced(sd.text_encoder, splice):
        for _ in range(8):
            splice.rows = learned()
            loss = denoising_loss(sd, latents, sd.text_encoder(ids), t=t, noise=noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert not torch.equal(learned.weight.detach(), start)


def test_loss_fn_uses_the_property_templates_and_the_placeholder(sd, images):
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat", num_vectors=2)
    seen = []
    tokenizer = sd.tokenizer

    class Recorder:
        def __call__(self, prompts):
            seen.extend(prompts)
            return tokenizer(prompts)

    sd.tokenizer = Recorder()
    latents = ImageLatents.encode(sd, images)
    learned = LearnedRows(get_rows(sd.text_encoder, p))
    for prop, allowed in (("object", OBJECT_TEMPLATES), ("style", STYLE_TEMPLATES)):
        seen.clear()
        cfg = dataclasses.replace(TINY, learnable_property=prop)
        fn = make_loss_fn(sd, latents, p, Splice(p, learned.weight), cfg, learned.weight)
        fn(learned, torch.arange(4))
        expected = {t.format("<tok> <tok>_1") for t in allowed}
        assert len(seen) == 4 and set(seen) <= expected


def test_embedding_regulariser_adds_the_squared_drift(sd, images):
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat")
    latents = ImageLatents.encode(sd, images)
    learned = LearnedRows(get_rows(sd.text_encoder, p))
    init = learned.weight.detach().clone()
    with torch.no_grad():
        learned.weight.add_(0.5)
    values = []
    for weight in (0.0, 2.0):
        cfg = dataclasses.replace(TINY, embedding_reg_weight=weight)
        splice = Splice(p, learned.weight)
        fn = make_loss_fn(sd, latents, p, splice, cfg, init)
        torch.manual_seed(1)
        with spliced(sd.text_encoder, splice), torch.no_grad():
            values.append(fn(learned, torch.arange(2)).item())
    assert values[1] - values[0] == pytest.approx(2.0 * 0.25 * 32, rel=1e-5)


def test_resume_gives_the_same_rows(images, tmp_path):
    from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

    def run(out, steps, resume=True):
        sd = tiny_stable_diffusion()
        p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat")
        cfg = dataclasses.replace(TINY, steps=steps, checkpoint_every=2)
        train_embedding(sd, images, p, cfg, out, seed=5, resume=resume)
        return get_rows(sd.text_encoder, p)

    whole = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    assert torch.equal(run(tmp_path / "b", 3), whole)
    assert not torch.equal(run(tmp_path / "c", 2), whole)


def test_image_latents_mirror_and_mean(sd, images):
    lat = ImageLatents.encode(sd, images)
    assert torch.allclose(lat.mean[:, 1], sd.encode_images(images.flip(-1)), atol=1e-6)
    assert torch.allclose(lat.mean[:, 0], sd.encode_images(images), atol=1e-6)
    idx, flip = torch.tensor([2, 0]), torch.tensor([True, False])
    assert torch.equal(lat.sample(idx, flip, sample=False), lat.mean[[2, 0], [1, 0]])
    torch.manual_seed(0)
    drawn = lat.sample(idx, flip)
    torch.manual_seed(0)
    eps = torch.randn_like(drawn)
    assert torch.allclose(drawn, lat.mean[[2, 0], [1, 0]] + lat.std[[2, 0], [1, 0]] * eps)


@pytest.mark.parametrize("flip_p, expected", [(0.0, False), (1.0, True)])
def test_flip_probability_is_honoured(sd, images, flip_p, expected):
    p = add_placeholder(sd.tokenizer, sd.text_encoder, "<tok>", init="cat")
    latents = ImageLatents.encode(sd, images)
    seen = []

    class Recording:
        def sample(self, index, flipped, sample=True):
            seen.append(flipped.clone())
            return latents.sample(index, flipped, sample=sample)

    learned = LearnedRows(get_rows(sd.text_encoder, p))
    cfg = dataclasses.replace(TINY, flip_p=flip_p)
    fn = make_loss_fn(sd, Recording(), p, Splice(p, learned.weight), cfg, learned.weight)
    with torch.no_grad():
        fn(learned, torch.arange(4))
    assert seen[0].tolist() == [expected] * 4
