import pytest
import torch

from diffrepro.maskgit.config import TINY
from diffrepro.maskgit.decoding import DecodeConfig
from diffrepro.maskgit.generation import (
    EDIT_DECODE,
    blurred_pixel_mask,
    box_mask,
    edit,
    inpaint,
    outpaint_mask,
    sample,
)
from diffrepro.maskgit.schedule import masked_counts
from diffrepro.maskgit.transformer import MaskGitTransformer
from diffrepro.maskgit.vqgan import VQGAN


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    return MaskGitTransformer(TINY.transformer).eval(), VQGAN(TINY.tokenizer).eval()


def test_sample_is_complete_and_deterministic(pair):
    model, tok = pair
    labels = torch.tensor([0, 2])
    cfg = DecodeConfig(num_iter=4)
    a = sample(model, tok, labels, cfg, torch.Generator().manual_seed(0))
    b = sample(model, tok, labels, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.images, b.images)
    assert a.images.shape == (2, 3, 16, 16)
    assert torch.equal(a.tokens[:, 0], 16 + labels) and bool((a.tokens[:, 1:] < 16).all())
    assert a.result.masked.sum(-1)[0].tolist() == masked_counts(16, 4) == [14, 11, 6, 1]
    with pytest.raises(ValueError, match="class labels"):
        sample(model, tok, torch.tensor([3]), cfg)


@pytest.mark.parametrize("kind", ["inpaint", "outpaint", "edit"])
def test_known_tokens_are_never_changed(pair, kind):
    model, tok = pair
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    if kind == "outpaint":
        region = outpaint_mask(4, "right", 2)
    else:
        region = box_mask(4, 4, (4, 4, 4, 4))
    region = region.expand(2, 4, 4)
    fn = edit if kind == "edit" else inpaint
    cfg = EDIT_DECODE if kind == "edit" else DecodeConfig(num_iter=4)
    out = fn(model, tok, images, region, torch.tensor([1, 2]), cfg, torch.Generator())
    codes = tok.encode(images).flatten(1)
    known = ~region.flatten(1)
    assert torch.equal(out.tokens[:, 1:][known], codes[known])
    assert torch.equal(out.tokens[:, 0], torch.tensor([17, 18]))
    assert bool((out.tokens[:, 1:] < 16).all())
    if kind == "edit":
        assert out.result.steps == 10  # 12 iterations starting at 2


def test_editing_box_follows_the_official_margin():
    m = box_mask(16, 16, (64, 32, 100, 40))  # rows 4-1 .. 4+6+1, cols 2-1 .. 2+2+1
    rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
    assert (int(rows.min()), int(rows.max())) == (3, 10)
    assert (int(cols.min()), int(cols.max())) == (1, 4)
    assert bool(box_mask(4, 4, (0, 0, 4, 4))[0, 0])  # clipped at the border
    with pytest.raises(ValueError):
        box_mask(4, 4, (-1, 0, 4, 4))
    with pytest.raises(ValueError, match="outside"):
        box_mask(4, 4, (40, 40, 4, 4))


def test_outpaint_masks_and_blurred_composite():
    assert outpaint_mask(4, "right", 1).sum() == 12 and bool(
        outpaint_mask(4, "left", 3)[:, 0].all()
    )
    assert (
        bool(outpaint_mask(4, "bottom", 1)[1:].all()) and not outpaint_mask(4, "top", 3)[1:].any()
    )
    with pytest.raises(ValueError):
        outpaint_mask(4, "right", 4)
    with pytest.raises(ValueError):
        outpaint_mask(4, "middle", 2)
    region = torch.zeros(4, 4, dtype=torch.bool)
    region[1:3, 1:3] = True
    sharp = blurred_pixel_mask(region, 64, radius=0)[0, 0]
    assert float(sharp[16:48, 16:48].min()) == 1.0 and float(sharp[:16].max()) == 0.0
    soft = blurred_pixel_mask(region, 64)[0, 0]  # official radius 64 // 16 - 1 = 3
    assert 0 < float(soft[15, 32]) < 1 and float(soft[32, 32]) == pytest.approx(1.0, abs=1e-2)
