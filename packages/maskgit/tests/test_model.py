import math

import numpy as np
import pytest
import torch

from diffrepro.maskgit.losses import entropy_loss, masked_token_loss, smoothed_targets, vq_losses
from diffrepro.maskgit.transformer import (
    LN_EPS,
    AttentionRecorder,
    MaskGitTransformer,
    TransformerConfig,
    gelu,
)
from diffrepro.maskgit.vqgan import GN_EPS, VQGAN, VQGANConfig

CFG = TransformerConfig(
    codebook_size=10,
    num_classes=4,
    latent_size=3,
    width=16,
    depth=2,
    heads=4,
    mlp_dim=32,
    dropout=0.0,
    attention_dropout=0.0,
)


def model(cfg=CFG, seed=0):
    torch.manual_seed(seed)
    return MaskGitTransformer(cfg).double().eval()


def test_vocabulary_layout():
    assert CFG.vocab_size == 10 + 4 + 1 and CFG.mask_id == 14 == CFG.vocab_size - 1
    assert CFG.class_id(2) == 12 and CFG.seq_len == 10
    official = TransformerConfig()
    assert (official.vocab_size, official.mask_id, official.seq_len) == (2025, 2024, 257)
    m = model()
    assert m.tok_emb.weight.shape == (15, 16) and m.pos_emb.shape == (10, 16)
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[15, 0]]))
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[-1, 0]]))


def test_post_ln_tanh_gelu_eps_and_tied_head():
    m = model()
    assert all(
        ln.eps == LN_EPS == 1e-12 for ln in m.modules() if isinstance(ln, torch.nn.LayerNorm)
    )
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    ref = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert torch.allclose(gelu(x), ref, atol=1e-15)
    assert not torch.allclose(gelu(x), torch.nn.functional.gelu(x), atol=1e-6)
    tokens = torch.tensor([[11, 14, 3, 14, 0, 1, 2, 14, 5, 6]])
    block = m.blocks[0]
    h0 = m.emb_ln(m.tok_emb(tokens) + m.pos_emb)
    h = block.attn_ln(h0 + block.attn(h0))
    expected = block.mlp_ln(h + block.mlp(h))
    assert torch.allclose(block(h0), expected)  # LN after each residual sum (post-LN)
    # the output matrix is the word embedding matrix (tied head)
    hidden = h0
    for blk in m.blocks:
        hidden = blk(hidden)
    head = m.head.ln(gelu(m.head.dense(hidden)))
    assert torch.allclose(m(tokens), head @ m.tok_emb.weight.t() + m.head.bias)
    assert not any(p.shape == (15, 16) for n, p in m.named_parameters() if n != "tok_emb.weight")


def test_attention_maps_are_recorded_and_editable():
    m = model()
    tokens = torch.tensor([[11, 14, 3, 14, 0, 1, 2, 14, 5, 6]] * 2)
    logits, maps = m.attention_maps(tokens, layers=(1,))
    assert list(maps) == [1] and maps[1].shape == (2, 4, 10, 10)
    assert torch.allclose(maps[1].sum(-1), torch.ones(2, 4, 10, dtype=torch.float64))
    assert torch.allclose(logits, m(tokens))
    recorder = AttentionRecorder()
    m(tokens, hook=recorder)
    assert sorted(recorder.probs) == [0, 1]
    uniform = m(tokens, hook=lambda i, p: torch.full_like(p, 1 / p.shape[-1]))
    assert not torch.allclose(uniform, logits)


def test_bidirectional_vs_causal():
    m = model()
    a = torch.tensor([[11, 1, 2, 3, 4, 5, 6, 7, 8, 9]])
    b = a.clone()
    b[0, 9] = 0
    assert not torch.allclose(m(a)[0, 1], m(b)[0, 1])  # the future is visible
    cm = model(TransformerConfig(**{**CFG.__dict__, "causal": True}))
    assert torch.allclose(cm(a)[0, :9], cm(b)[0, :9])  # the future is hidden
    assert torch.allclose(cm(a[:, :4])[0], cm(a)[0, :4])


def test_label_smoothing_on_off_values():
    t = smoothed_targets(torch.tensor([2, 0]), vocab=5, smoothing=0.1)
    assert t[0].tolist() == pytest.approx([0.02, 0.02, 0.92, 0.02, 0.02])
    assert t.sum(-1).tolist() == pytest.approx([1.0, 1.0])


def test_loss_is_invariant_to_unmasked_logits_and_matches_reference():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 7, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 7, (2, 6), generator=gen)
    masked = torch.tensor([[0, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    loss = masked_token_loss(logits, targets, masked, smoothing=0.1)
    changed = logits.clone()
    changed[~masked] = torch.randn(int((~masked).sum()), 7, generator=gen, dtype=torch.float64)
    assert torch.equal(masked_token_loss(changed, targets, masked, smoothing=0.1), loss)
    assert masked_token_loss(changed, targets, masked, masked_only=False) != loss
    lp = np.log(np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(-1, keepdims=True))
    soft = np.full((2, 6, 7), 0.1 / 7)
    for i, j in np.ndindex(2, 6):
        soft[i, j, targets[i, j]] = 0.9 + 0.1 / 7
    ref = -(soft * lp).sum(-1)[masked.numpy()].mean()
    assert float(loss) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="no masked token"):
        masked_token_loss(logits, targets, torch.zeros_like(masked))


def test_entropy_loss_matches_official_formula():
    d = torch.rand(20, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a = -d.numpy() / 0.01
    p = np.exp(a - a.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    shifted = a + 1e-5
    logp = shifted - shifted.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    avg = p.mean(0)
    ref = -(p * logp).sum(-1).mean() + (avg * np.log(avg + 1e-5)).sum()
    assert float(entropy_loss(d, 0.01)) == pytest.approx(ref, rel=1e-9)
    # spreading the codes over the batch lowers the loss (dead-code prevention)
    one = torch.zeros(6, 6, dtype=torch.float64) + 1.0
    spread, same = one.clone(), one.clone()
    spread[range(6), range(6)] = 0.0
    same[:, 0] = 0.0
    assert entropy_loss(spread) < entropy_loss(same)


TOK = VQGANConfig(
    filters=8,
    channel_multipliers=(1, 2, 2),
    num_res_blocks=1,
    embedding_dim=4,
    codebook_size=8,
    groups=4,
)


def test_vqgan_shapes_norms_and_nearest_codes():
    torch.manual_seed(0)
    vq = VQGAN(TOK).double().eval()
    assert all(
        gn.eps == GN_EPS == 1e-6 for gn in vq.modules() if isinstance(gn, torch.nn.GroupNorm)
    )
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    codes = vq.encode(x)
    assert codes.shape == (2, 4, 4)
    z = vq.encoder(x).permute(0, 2, 3, 1).reshape(-1, 4)
    brute = torch.cdist(z, vq.quantizer.codebook).argmin(1)
    assert torch.equal(codes.flatten(), brute)
    img = vq.decode(codes)
    assert img.shape == (2, 3, 16, 16) and float(img.min()) >= 0 and float(img.max()) <= 1
    with pytest.raises(ValueError, match="multiples of 4"):
        vq.encode(torch.rand(1, 3, 10, 10, dtype=torch.float64))


def test_vq_loss_terms_and_straight_through():
    torch.manual_seed(0)
    vq = VQGAN(TOK).double()
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    out = vq(x)
    terms = vq_losses(out, x, commitment=0.25, entropy_ratio=0.1)
    z, zq = out["z"].detach(), out["zq"].detach()
    assert float(terms["commitment"].detach()) == pytest.approx(
        float(((z - zq) ** 2).mean() * 0.25)
    )
    assert float(terms["codebook"].detach()) == pytest.approx(float(((z - zq) ** 2).mean()))
    total = (
        terms["reconstruction"] + terms["commitment"] + terms["codebook"] + 0.1 * terms["entropy"]
    )
    assert float(terms["total"].detach()) == pytest.approx(float(total.detach()))
    # the codebook term moves only the codebook, the commitment only the encoder
    vq.zero_grad()
    terms["codebook"].backward(retain_graph=True)
    assert vq.quantizer.codebook.grad.abs().sum() > 0
    assert vq.encoder.conv_in.weight.grad is None or vq.encoder.conv_in.weight.grad.abs().sum() == 0
    vq.zero_grad()
    terms["reconstruction"].backward()
    assert vq.encoder.conv_in.weight.grad.abs().sum() > 0  # straight-through reaches the encoder
