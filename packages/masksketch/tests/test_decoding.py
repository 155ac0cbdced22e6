from dataclasses import replace

import numpy as np
import pytest
import torch

from diffrepro.masksketch.budget import budgets, initial_masked, split_budget
from diffrepro.masksketch.config import TINY, MaskSketchConfig
from diffrepro.masksketch.decoding import (
    confidence,
    decode,
    initial_tokens,
    lowest_k,
    step_masks,
)

K, C, N = 16, 3, 16  # codes, classes, image tokens
MASK = K + C
L = N + 1


class StubModel:
    """Input-dependent float64 logits over the K + C + 1 ids."""

    def __init__(self, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.randn(K + C + 1, K + C + 1, generator=gen, dtype=torch.float64) * 3
        self.pos = torch.randn(L, K + C + 1, generator=gen, dtype=torch.float64)

    def __call__(self, tokens):
        return self.table[tokens].mean(1, keepdim=True) + self.pos + 0.3 * self.table[tokens]


ROWS = torch.randn(K + C + 1, L, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


def stub_attention(tokens):
    """Row i depends on token i only (B, 1, 1, L, L): rows of two sequences agree exactly where
    their tokens agree."""
    return torch.log_softmax(3 * ROWS[tokens], -1)[:, None, None]


def sketch_seq(batch=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, K, (batch, N), generator=gen)
    return torch.cat([torch.full((batch, 1), K + 1), codes], 1)


def cfg(**kw):
    base = MaskSketchConfig(layers=(0,), num_iter=6, max_mask_rate=0.95)
    return replace(base, **kw)


def run(config, batch=4, seed=0, model=None, attention=stub_attention):
    x = sketch_seq(batch)
    gen = torch.Generator().manual_seed(seed)
    start = initial_tokens(x, initial_masked(N, 0.95), MASK, gen)
    res = decode(
        model or StubModel(),
        attention,
        x,
        start,
        mask_id=MASK,
        codebook_size=K,
        config=config,
        generator=gen,
    )
    return x, start, res


def test_lowest_k_is_exactly_the_k_lowest():
    scores = torch.tensor([[0.5, 0.1, 0.9, 0.3], [0.2, 0.2, 0.0, 1.0]])
    got = lowest_k(scores, torch.tensor([2, 3]))
    assert got.tolist() == [[False, True, False, True], [True, True, True, False]]
    assert not lowest_k(scores, torch.tensor([0, 0])).any()


def test_initialisation_masks_exactly_n0_per_row_and_keeps_sketch_tokens():
    x = sketch_seq(6)
    start = initial_tokens(x, 15, MASK, torch.Generator().manual_seed(0))
    masked = start == MASK
    assert masked[:, 1:].sum(1).tolist() == [15] * 6 and not masked[:, 0].any()
    assert torch.equal(start[~masked], x[~masked])
    assert len({tuple(r) for r in masked.tolist()}) > 1  # a different mask per row


def test_confidence_is_the_rescaled_probability_of_the_chosen_token():
    logits = torch.randn(2, L, K, dtype=torch.float64)
    sampled = torch.randint(0, K, (2, L))
    p = torch.softmax(logits, -1).numpy()
    ref = np.take_along_axis(p, sampled.numpy()[..., None], -1)[..., 0][:, 1:]
    ref = (ref - ref.min(1, keepdims=True)) / (ref - ref.min(1, keepdims=True)).max(
        1, keepdims=True
    )
    np.testing.assert_allclose(confidence(logits, sampled).numpy(), ref, rtol=1e-12)


def test_step_masks_compose_the_two_lowest_k_sets():
    gen = torch.Generator().manual_seed(1)
    structure = torch.rand(3, L, generator=gen, dtype=torch.float64)
    conf = torch.rand(3, N, generator=gen, dtype=torch.float64)
    c = cfg(lambda_structure=0.6, num_iter=8)
    n0 = torch.tensor([15, 15, 12])
    for step in range(8):
        mask, budget = step_masks(structure, conf, n0, step, c)
        assert not mask[:, 0].any()
        for row in range(3):
            n_t = budgets(int(n0[row]), 8)[step]
            ks, kc = split_budget(n_t, 0.6)
            assert budget[row].tolist() == [n_t, ks, kc]
            by_s = set((np.argsort(structure[row, 1:].numpy(), kind="stable")[:ks] + 1).tolist())
            by_c = set((np.argsort(conf[row].numpy(), kind="stable")[:kc] + 1).tolist())
            assert set(mask[row].nonzero().flatten().tolist()) == by_s | by_c
            assert max(ks, kc) <= int(mask[row].sum()) <= ks + kc


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_lambda_zero_and_one_reduce_to_one_ranking(lam):
    gen = torch.Generator().manual_seed(2)
    structure = torch.rand(2, L, generator=gen, dtype=torch.float64)
    conf = torch.rand(2, N, generator=gen, dtype=torch.float64)
    mask, budget = step_masks(structure, conf, torch.tensor([15, 15]), 0, cfg(lambda_structure=lam))
    only = conf if lam == 0 else structure[:, 1:]
    n_t = int(budget[0, 0])
    assert mask[:, 1:].tolist() == lowest_k(only, torch.tensor([n_t, n_t])).tolist()


def test_decoding_output_is_complete_and_budgets_follow_the_formula():
    x, start, res = run(cfg(lambda_structure=0.7))
    assert not (res.tokens == MASK).any()
    assert int(res.tokens[:, 1:].min()) >= 0 and int(res.tokens[:, 1:].max()) < K
    assert torch.equal(res.tokens[:, 0], x[:, 0])
    expected = budgets(15, 6)
    assert res.budgets[:, 0, 0].tolist() == expected
    counts = res.masked.sum(-1)
    for t, n_t in enumerate(expected):
        ks, kc = split_budget(n_t, 0.7)
        assert bool((counts[:, t] >= max(ks, kc)).all()) and bool((counts[:, t] <= ks + kc).all())
    assert torch.equal(res.sequences[:, -1], res.tokens)
    for t in range(1, 6):  # each step's ŷ keeps the unmasked tokens of the previous one
        kept = ~res.masked[:, t - 1]
        assert torch.equal(res.sequences[:, t][kept], res.sequences[:, t - 1][kept])


class DistrustCurrentTokens(StubModel):
    """Gives the token already at each position a very low probability."""

    def __call__(self, tokens):
        logits = super().__call__(tokens).clone()
        logits.scatter_(-1, tokens[..., None], -30.0)
        return logits


def test_revealed_and_visible_sketch_tokens_can_be_remasked():
    """Unlike MaskGIT, known tokens get no +inf confidence: the initially visible sketch tokens
    (step 0) and the tokens revealed at step 0 (step 1) are the least confident, so
    confidence-only re-masking (λs = 0) takes them."""
    x, start, res = run(cfg(lambda_structure=0.0, num_iter=4), model=DistrustCurrentTokens())
    visible = start[:, 1:] != MASK
    assert bool(res.masked[:, 0, 1:][visible].all())
    revealed = ~res.masked[:, 0, 1:]
    assert bool(revealed.any()) and bool(res.masked[:, 1, 1:][revealed].all())


def test_structure_term_remasks_tokens_that_disagree_with_the_sketch():
    """With λs = 1, sym_kl and the stub attention, a row's distance is 0 exactly where the token
    equals the sketch's, so mismatches are re-masked first."""
    x, start, res = run(cfg(lambda_structure=1.0, num_iter=3, structure_mode="sym_kl"), batch=6)
    differs = res.sequences[:, 0, 1:] != x[:, 1:]
    masked = res.masked[:, 0, 1:]
    for row in range(6):
        k = int(masked[row].sum())
        if int(differs[row].sum()) >= k:  # every re-masked token was a mismatch
            assert bool(differs[row][masked[row]].all())
        else:  # every mismatch was re-masked
            assert bool(masked[row][differs[row]].all())


def test_seeded_decoding_is_deterministic():
    a, b, c = run(cfg(), seed=3)[2], run(cfg(), seed=3)[2], run(cfg(), seed=4)[2]
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.masked, b.masked)
    assert not torch.equal(a.tokens, c.tokens)


def test_temperature_adds_randomness_to_the_ranking():
    gen = torch.Generator().manual_seed(0)
    structure = torch.rand(1, L, dtype=torch.float64)
    conf = torch.rand(1, N, dtype=torch.float64)
    c = cfg(lambda_structure=1.0, temperature_structure=5.0)
    masks = {
        tuple(step_masks(structure, conf, torch.tensor([15]), 3, c, gen)[0][0].tolist())
        for _ in range(10)
    }
    assert len(masks) > 1


def test_incomplete_sketch_is_an_error():
    x = sketch_seq(2)
    bad = x.clone()
    bad[:, 3] = MASK
    with pytest.raises(ValueError, match="complete"):
        decode(StubModel(), stub_attention, bad, bad, mask_id=MASK, codebook_size=K, config=TINY)
