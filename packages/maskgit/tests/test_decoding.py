import math

import pytest
import torch

from diffrepro.maskgit import decoding
from diffrepro.maskgit.decoding import (
    DecodeConfig,
    decode,
    decode_autoregressive,
    guided,
    mask_by_random_topk,
    unconditional_token,
)
from diffrepro.maskgit.schedule import masked_counts

K, C = 16, 3
MASK = K + C
V = K + C + 1


def start_tokens(batch, n, *, known=None, label=1, seed=0):
    """(B, 1 + n) with the class token at 0 and the mask id elsewhere (or ``known`` kept)."""
    tokens = torch.full((batch, n + 1), MASK, dtype=torch.long)
    tokens[:, 0] = K + label
    if known is not None:
        gen = torch.Generator().manual_seed(seed)
        values = torch.randint(0, K, (batch, n), generator=gen)
        tokens[:, 1:][known] = values[known]
    return tokens


def run(stub, tokens, seed=0, **kw):
    cfg = DecodeConfig(**kw)
    gen = torch.Generator().manual_seed(seed)
    return decode(stub, tokens, mask_id=MASK, codebook_size=K, config=cfg, generator=gen)


@pytest.mark.parametrize(
    ("n", "steps", "method", "start"),
    [
        (256, 8, "cosine", 0),
        (256, 12, "cosine", 0),
        (64, 5, "linear", 0),
        (50, 7, "square", 2),
        (33, 4, "square-root", 0),
        (20, 6, "log", 1),
        (40, 5, "exp", 0),
        (1, 3, "cosine", 0),
        (10, 40, "cosine", 0),  # T > N0: the schedule stalls, the clamp reveals one per step
        (6, 20, "linear", 3),
    ],
)
def test_masked_count_after_every_step_is_n_t(stub, n, steps, method, start):
    model = stub(V)
    res = run(model, start_tokens(3, n), num_iter=steps, schedule=method, start_iter=start)
    counts = res.masked.sum(-1)  # (B, S)
    expected = masked_counts(n, steps, method, start)
    assert counts.tolist() == [expected] * 3
    assert res.steps == model.calls == steps - start
    if n >= 2:  # each step reveals at least one token and leaves at least one masked
        before = torch.tensor([n, *expected[:-1]])
        after = torch.tensor(expected)
        assert bool((after[before >= 2] < before[before >= 2]).all()) and min(expected) >= 1


def test_spec_counts_through_the_decoder(stub):
    res = run(stub(V), start_tokens(2, 256), num_iter=8)
    assert res.masked.sum(-1)[0].tolist() == [251, 236, 212, 181, 142, 97, 49, 1]


def test_editing_start_iter_counts(stub):
    known = torch.ones(1, 144, dtype=torch.bool)
    known[0, torch.randperm(144, generator=torch.Generator().manual_seed(1))[:100]] = False
    tokens = start_tokens(1, 144, known=known)
    res = run(stub(V), tokens, num_iter=12, start_iter=2)
    assert res.masked.sum(-1)[0].tolist() == [92, 86, 79, 70, 60, 50, 38, 25, 13, 1]


def test_reveal_is_monotone_and_output_is_pre_remask_sample(stub):
    res = run(stub(V), start_tokens(4, 30), num_iter=6)
    final = res.tokens
    assert torch.equal(final, res.sequences[:, -1])
    for t in range(res.steps):
        revealed = ~res.masked[:, t]
        assert torch.equal(res.sequences[:, t][revealed], final[revealed])
        if t:
            assert not bool((res.masked[:, t] & ~res.masked[:, t - 1]).any())  # never re-masked
    assert int(res.masked[:, -1].sum(-1).max()) == 1  # the internal state keeps one mask
    assert not bool((final == MASK).any())
    assert bool((final[:, 1:] >= 0).all() and (final[:, 1:] < K).all())


@pytest.mark.parametrize("steps", [1, 4])
def test_known_and_class_tokens_are_bit_identical(stub, steps):
    n = 25
    known = torch.rand(3, n, generator=torch.Generator().manual_seed(2)) < 0.5
    tokens = start_tokens(3, n, known=known, label=2)
    res = run(stub(V), tokens, num_iter=steps)
    keep = tokens != MASK
    assert torch.equal(res.tokens[keep], tokens[keep])
    for t in range(res.steps):
        assert torch.equal(res.sequences[:, t][keep], tokens[keep])
        assert not bool(res.masked[:, t][keep].any())
    assert torch.equal(res.tokens[:, 0], tokens[:, 0])
    assert not bool((res.tokens == MASK).any())


def test_only_image_codes_are_sampled():
    def greedy_for_specials(tokens):
        logits = torch.zeros(*tokens.shape, V, dtype=torch.float64)
        logits[..., K:] = 50.0  # class ids and the mask id would win if not sliced away
        return logits

    res = run(greedy_for_specials, start_tokens(2, 20), num_iter=4)
    assert bool((res.tokens[:, 1:] < K).all())


def test_tokens_are_sampled_from_the_softmax_not_argmax():
    probs = torch.tensor([0.5, 0.3, 0.2] + [0.0] * (K - 3), dtype=torch.float64)
    logits = torch.log(probs.clamp_min(1e-300))

    def fixed(tokens):
        return torch.cat([logits, torch.zeros(V - K, dtype=torch.float64)]).expand(*tokens.shape, V)

    res = run(fixed, start_tokens(200, 20), num_iter=1)
    freq = torch.bincount(res.tokens[:, 1:].flatten(), minlength=K).double() / 4000
    assert freq[:3].tolist() == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


def test_zero_temperature_remasks_the_least_probable_sampled_tokens(stub):
    model = stub(V, seed=5)
    n, steps = 40, 6
    tokens = start_tokens(3, n)
    res = run(model, tokens, num_iter=steps, choice_temperature=0.0)
    state = tokens
    for t in range(steps):
        log_p = torch.log_softmax(model(state)[..., :K], dim=-1)
        chosen = log_p.gather(-1, res.sequences[:, t].clamp(max=K - 1)[..., None])[..., 0]
        chosen = torch.where(state == MASK, chosen, torch.full_like(chosen, math.inf))
        n_t = int(res.masked[0, t].sum())
        lowest = chosen.argsort(dim=-1)[:, :n_t]
        expected = torch.zeros_like(res.masked[:, t]).scatter(1, lowest, True)
        assert torch.equal(res.masked[:, t], expected)
        state = torch.where(res.masked[:, t], torch.full_like(state, MASK), res.sequences[:, t])


def test_choice_temperature_is_annealed_linearly(stub, monkeypatch):
    seen = []
    original = decoding.mask_by_random_topk

    def spy(mask_len, log_probs, temperature, generator=None):
        seen.append(temperature)
        return original(mask_len, log_probs, temperature, generator)

    monkeypatch.setattr(decoding, "mask_by_random_topk", spy)
    run(stub(V), start_tokens(1, 30), num_iter=5, choice_temperature=4.5, start_iter=1)
    assert seen == pytest.approx([4.5 * (1 - (t + 1) / 5) for t in range(1, 5)], abs=1e-12)


def test_gumbel_noise_changes_the_remasked_set(stub):
    tokens = start_tokens(1, 60)
    cold = [run(stub(V), tokens, seed=s, num_iter=4, choice_temperature=0.0) for s in (0, 1)]
    hot = [run(stub(V), tokens, seed=s, num_iter=4, choice_temperature=1e6) for s in (0, 1)]

    # with huge noise the kept set is random: it no longer follows the confidences
    def overlap(a, b):
        return int((a.masked[0, 0] & b.masked[0, 0]).sum())

    assert overlap(hot[0], cold[0]) < int(cold[0].masked[0, 0].sum())
    assert overlap(hot[0], hot[1]) < int(hot[0].masked[0, 0].sum())


def test_mask_by_random_topk_strict_cutoff():
    log_p = torch.tensor([[0.1, 0.5, -1.0, math.inf, -0.2]], dtype=torch.float64)
    out = mask_by_random_topk(torch.tensor([[2]]), log_p, 0.0)
    assert out.tolist() == [[False, False, True, False, True]]
    out = mask_by_random_topk(torch.tensor([[1]]), log_p, 0.0)
    assert out.tolist() == [[False, False, True, False, False]]
    full = mask_by_random_topk(torch.tensor([[5]]), log_p, 0.0)
    assert full.tolist() == [[True, True, True, False, True]]  # +inf is never selected


def test_determinism_with_a_seeded_generator(stub):
    tokens = start_tokens(2, 30)
    a, b = run(stub(V), tokens, seed=7), run(stub(V), tokens, seed=7)
    c = run(stub(V), tokens, seed=8)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.masked, b.masked)
    assert not torch.equal(a.tokens, c.tokens)


def test_guidance_formula_and_every_row_unconditional(stub):
    model = stub(V)
    tokens = start_tokens(4, 10)
    assert guided(model, 0.0, MASK) is model
    fn = guided(model, 0.6, K + 2)
    uncond = tokens.clone()
    uncond[:, 0] = K + 2
    expected = model(tokens) + 0.6 * (model(tokens) - model(uncond))
    assert torch.allclose(fn(tokens), expected)
    token = unconditional_token(
        "random-class",
        codebook_size=K,
        num_classes=C,
        mask_id=MASK,
        generator=torch.Generator().manual_seed(0),
    )
    assert K <= token < K + C
    assert unconditional_token("mask", codebook_size=K, num_classes=C, mask_id=MASK) == MASK


def test_config_rejects_bad_values():
    for kw in (
        {"num_iter": 0},
        {"start_iter": 8},
        {"choice_temperature": -1.0},
        {"schedule": "nope"},
        {"guidance_scale": float("nan")},
        {"guidance_uncond": "zero"},
    ):
        with pytest.raises(ValueError):
            DecodeConfig(**kw)


def test_autoregressive_baseline_one_call_per_unknown_token(stub):
    model = stub(V)
    n = 12
    known = torch.zeros(2, n, dtype=torch.bool)
    known[:, :4] = True
    tokens = start_tokens(2, n, known=known)
    res = decode_autoregressive(
        model, tokens, mask_id=MASK, codebook_size=K, generator=torch.Generator().manual_seed(0)
    )
    assert res.steps == model.calls == n - 4
    assert torch.equal(res.tokens[:, :5], tokens[:, :5])
    assert not bool((res.tokens == MASK).any()) and bool((res.tokens[:, 1:] < K).all())
    # raster order: after step s exactly the first 5 + s positions are filled
    assert res.masked.sum(-1)[0].tolist() == list(range(n - 5, -1, -1))


def test_gumbel_topk_keeps_tokens_in_proportion_to_their_probability():
    # revealing one of three tokens with temperature 1 is a Gumbel-max draw: P(keep i) = p_i
    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    log_p = p.log().expand(20000, 3)
    gen = torch.Generator().manual_seed(0)
    masked = mask_by_random_topk(torch.full((20000, 1), 2), log_p, 1.0, gen)
    kept = (~masked).double().mean(0)
    assert kept.tolist() == pytest.approx([0.6, 0.3, 0.1], abs=0.015)
