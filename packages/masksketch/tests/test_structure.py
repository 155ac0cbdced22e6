import numpy as np
import pytest
import torch
from masksketch_helpers import random_log_attention

from diffrepro.masksketch.structure import (
    image_distance,
    layer_distances,
    rescale,
    row_distance,
    structure_scores,
    token_distance,
)

SHAPE = (2, 3, 4, 7, 7)  # batch, layers, heads, L, L


def numpy_distance(log_a, log_b, mode):
    """float64 numpy reference: per row, then the mean over heads, then over layers."""
    la, lb = log_a.numpy(), log_b.numpy()
    a, b = np.exp(la), np.exp(lb)
    if mode == "sym_ce":
        rows = -(a * lb).sum(-1) - (b * la).sum(-1)
    else:
        rows = (a * np.log(a / b)).sum(-1) + (b * np.log(b / a)).sum(-1)
    return rows.mean(axis=2).mean(axis=1)


@pytest.mark.parametrize("mode", ["sym_ce", "sym_kl"])
def test_token_distance_matches_the_numpy_reference(mode):
    a, b = random_log_attention(SHAPE, 0), random_log_attention(SHAPE, 1)
    ours = token_distance(a, b, mode)
    assert ours.shape == (2, 7)
    np.testing.assert_allclose(ours.numpy(), numpy_distance(a, b, mode), rtol=1e-12)


def test_head_then_layer_averaging():
    a, b = random_log_attention(SHAPE, 0), random_log_attention(SHAPE, 1)
    per_layer = layer_distances(a, b)
    assert per_layer.shape == (2, 3, 7)
    rows = row_distance(a, b)
    torch.testing.assert_close(per_layer, rows.mean(dim=2))
    torch.testing.assert_close(token_distance(a, b), rows.mean(dim=2).mean(dim=1))


@pytest.mark.parametrize("mode", ["sym_ce", "sym_kl"])
def test_symmetric_in_its_arguments(mode):
    a, b = random_log_attention(SHAPE, 0), random_log_attention(SHAPE, 1)
    torch.testing.assert_close(token_distance(a, b, mode), token_distance(b, a, mode))


def test_sym_kl_is_zero_at_equality_and_positive_otherwise():
    a, b = random_log_attention(SHAPE, 0), random_log_attention(SHAPE, 1)
    assert float(token_distance(a, a, "sym_kl").abs().max()) == 0.0
    assert bool((row_distance(a, b, "sym_kl") > 0).all())


def test_sym_ce_is_sym_kl_plus_both_entropies():
    a, b = random_log_attention((500, 11), 2), random_log_attention((500, 11), 3)
    entropy = lambda log_p: -(log_p.exp() * log_p).sum(-1)  # noqa: E731
    torch.testing.assert_close(
        row_distance(a, b, "sym_ce"), row_distance(a, b, "sym_kl") + entropy(a) + entropy(b)
    )
    # so sym_ce is not zero at equality: it is twice the entropy there
    torch.testing.assert_close(row_distance(a, a, "sym_ce"), 2 * entropy(a))


def test_rescale_spans_zero_to_one_and_is_nan_free_when_flat():
    x = torch.tensor([[3.0, -1.0, 1.0, 7.0], [2.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    out = rescale(x)
    torch.testing.assert_close(out[0], torch.tensor([0.5, 0.0, 0.25, 1.0], dtype=torch.float64))
    assert float(out[0].min()) == 0.0 and float(out[0].max()) == 1.0
    assert bool(torch.isfinite(out).all()) and float(out[1].abs().max()) == 0.0


def test_scores_are_similarities_one_for_the_matching_tokens():
    a = random_log_attention(SHAPE, 0)
    b = a.clone()
    b[:, :, :, 4] = random_log_attention((2, 3, 4, 7), 5)  # token 4 attends differently
    scores = structure_scores(a, b, "sym_kl")
    assert torch.equal(scores[:, 4], torch.zeros(2, dtype=scores.dtype))
    assert bool((scores[:, [0, 1, 2, 3, 5, 6]] == 1).all())


def test_image_distance_averages_the_image_positions_only():
    a = random_log_attention(SHAPE, 0)
    b = a.clone()
    b[:, :, :, 0] = random_log_attention((2, 3, 4, 7), 5)  # only the class row differs
    assert float(image_distance(a, b, "sym_kl").abs().max()) == 0.0
    c = random_log_attention(SHAPE, 1)
    torch.testing.assert_close(image_distance(a, c), token_distance(a, c)[:, 1:].mean(-1))


def test_shape_mismatch_and_unknown_mode_are_errors():
    a = random_log_attention(SHAPE, 0)
    with pytest.raises(ValueError, match="differ in shape"):
        token_distance(a, a[:, :2])
    with pytest.raises(ValueError, match="sym_ce or sym_kl"):
        row_distance(a, a, "kl")
