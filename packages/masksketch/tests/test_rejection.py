from dataclasses import replace

import pytest
import torch

from diffrepro.masksketch.config import TINY
from diffrepro.masksketch.generation import SketchGenerated, generate, sketch_distance
from diffrepro.masksketch.rejection import (
    best_of_k,
    classifier_scorer,
    random_scorer,
    select,
    structure_scorer,
)


def test_best_of_k_takes_the_highest_score_of_each_group():
    scores = torch.tensor([0.1, 0.9, 0.3, 5.0, -1.0, 2.0], dtype=torch.float64)
    assert best_of_k(scores, 3).tolist() == [1, 3]
    assert best_of_k(scores, 2).tolist() == [1, 3, 5]
    with pytest.raises(ValueError, match="K = 4"):
        best_of_k(scores, 4)
    with pytest.raises(FloatingPointError, match="not finite"):
        best_of_k(torch.tensor([0.0, float("nan")]), 2)


def fake(labels, candidates=2):
    images = torch.rand(len(labels) * candidates, 3, 4, 4, generator=torch.Generator())
    return SketchGenerated(
        images, None, None, torch.tensor(labels).repeat_interleave(candidates), candidates
    )


def test_classifier_scorer_is_the_log_probability_of_the_target_class():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 3.0]])
    gen = fake([0, 1])
    score = classifier_scorer(lambda images: logits)(gen)
    expected = torch.log_softmax(logits.double(), -1)[[0, 1, 2, 3], [0, 0, 1, 1]]
    torch.testing.assert_close(score, expected)
    assert select(gen, classifier_scorer(lambda images: logits))[1].tolist() == [0, 3]


def test_random_scorer_is_seeded():
    gen = fake([0, 1, 2])
    a = random_scorer(torch.Generator().manual_seed(0))(gen)
    b = random_scorer(torch.Generator().manual_seed(0))(gen)
    assert torch.equal(a, b) and len(a) == 6


def test_structure_scorer_keeps_the_candidate_closest_to_the_sketch(tiny_models):
    model, tok = tiny_models
    sketches = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    cfg = replace(TINY, candidates=3, num_iter=2)
    out = generate(model, tok, sketches, torch.tensor([0, 2]), cfg, torch.Generator())
    distance = sketch_distance(model, out, cfg)
    torch.testing.assert_close(distance, out.result.distance)
    _, index = select(out, structure_scorer(model, cfg))
    assert index.tolist() == (distance.view(2, 3).argmin(1) + torch.tensor([0, 3])).tolist()
