import pytest
import torch

from diffrepro.maskgit.transformer import AttentionRecorder
from diffrepro.masksketch.attention import log_attention


def tokens_for(model, batch=3, seed=0):
    mc = model.config
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, mc.codebook_size, (batch, mc.num_tokens), generator=gen)
    cls = mc.class_id(torch.arange(batch) % mc.num_classes)[:, None]
    return torch.cat([cls, codes], dim=1)


def test_rows_sum_to_one_over_the_whole_sequence(tiny_models):
    model, _ = tiny_models
    log_a = log_attention(model, tokens_for(model), (0, 1))
    mc = model.config
    assert log_a.shape == (3, 2, mc.heads, mc.seq_len, mc.seq_len)
    torch.testing.assert_close(log_a.exp().sum(-1), torch.ones(log_a.shape[:-1]))
    assert bool(torch.isfinite(log_a).all())


def test_recomputed_from_q_k_equals_the_models_own_attention(tiny_models):
    """Q Kᵀ / √d recomputed from the captured layer inputs = the probabilities the transformer
    really used (read through the core attention's probs hook), layer by layer."""
    model, _ = tiny_models
    tokens = tokens_for(model)
    recorder = AttentionRecorder()
    with torch.no_grad():
        model(tokens, hook=recorder)
    for layer in (0, 1):
        ours = log_attention(model, tokens, (layer,))[:, 0].exp()
        torch.testing.assert_close(ours, recorder.probs[layer], atol=1e-5, rtol=1e-4)


def test_layer_selection_returns_exactly_those_layers_in_order(tiny_models):
    model, _ = tiny_models
    tokens = tokens_for(model)
    both = log_attention(model, tokens, (1, 0))
    torch.testing.assert_close(both[:, 0], log_attention(model, tokens, (1,))[:, 0])
    torch.testing.assert_close(both[:, 1], log_attention(model, tokens, (0,))[:, 0])
    assert not torch.allclose(both[:, 0], both[:, 1])


def test_extreme_logits_stay_finite(tiny_models):
    model, _ = tiny_models
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight.mul_(1e3)
    log_a = log_attention(model, tokens_for(model), (0,))
    assert bool(torch.isfinite(log_a).all()) and float(log_a.exp().min()) == 0.0


def test_bad_layers_and_train_mode_are_errors(tiny_models):
    model, _ = tiny_models
    with pytest.raises(ValueError, match="do not exist in a 2-layer"):
        log_attention(model, tokens_for(model), (2,))
    with pytest.raises(ValueError, match="eval mode"):
        log_attention(model.train(), tokens_for(model), (0,))
