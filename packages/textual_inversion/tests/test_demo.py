import json
import math

import pytest
import torch

from diffrepro.textual_inversion.evaluation import (
    colour_hits,
    foreground_colour,
    identity_retrieval,
    image_similarity,
)
from diffrepro.textual_inversion.paper import PAPER


def test_quick_demo_writes_figure_metrics_and_report(tmp_path):
    result = PAPER.run_demo(tmp_path, quick=True)
    assert (tmp_path / "figure.png").is_file() and result.report == tmp_path / "report.md"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for method in ("textual_inversion", "initial_word", "finetuned_unet"):
        scores = metrics["object"][method]
        assert set(scores) == {"top1", "top5", "image_similarity", "editability"}
        assert all(math.isfinite(v) for v in scores.values())
    assert "Paper vs ours" in result.report.read_text() and len(result.headline) == 4
    assert (tmp_path / "object" / "learned_embeds.safetensors").is_file()
    assert list((tmp_path / "object" / "tb").iterdir())


def test_image_similarity_is_the_mean_pairwise_cosine():
    a, b = torch.randn(3, 5), torch.randn(4, 5)
    expected = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T
    assert image_similarity(lambda x: x, a, b) == pytest.approx(float(expected.mean()), abs=1e-6)
    assert image_similarity(lambda x: x * 3.0, a, a[[0, 0]]) <= 1.0
    same = torch.randn(1, 5).expand(3, 5)
    assert image_similarity(lambda x: x, same, same) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(FloatingPointError):
        image_similarity(lambda x: x, torch.full((1, 5), float("nan")), b)


def test_identity_retrieval_counts_top_k_hits():
    logits = torch.tensor([[0.9, 0.5, 0.4, 0.3, 0.0, 0.2], [0.0, 0.9, 0.8, 0.7, 0.6, 0.1]])
    got = identity_retrieval(lambda x: x, logits, target=0)
    assert got == {"top1": 0.5, "top5": 0.5}
    assert identity_retrieval(lambda x: x, logits, target=4) == {"top1": 0.0, "top5": 0.5}


def test_colour_hits_reads_the_foreground_colour():
    images = torch.ones(2, 3, 8, 8)
    images[0, :, 2:6, 2:6] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    images[1, :, 2:6, 2:6] = torch.tensor([-1.0, -1.0, 1.0])[:, None, None]
    assert torch.allclose(foreground_colour(images)[0], torch.tensor([1.0, -1.0, -1.0]))
    assert colour_hits(images, "red") == 0.5 and colour_hits(images, "blue") == 0.5
    assert colour_hits(images, "green") == 0.0
    with pytest.raises(ValueError, match="unknown colour"):
        colour_hits(images, "mauve")


def test_text_similarity_strips_the_placeholder_before_encoding():
    from diffrepro.textual_inversion.evaluation import strip_placeholders, text_similarity
    from diffrepro.textual_inversion.placeholders import Placeholder

    p = Placeholder("<t>", ("<t>", "<t>_1"), (10, 11))
    assert strip_placeholders("a photo of <t> <t>_1 on a beach", [p]) == "a photo of on a beach"
    seen = []
    direction = torch.tensor([[1.0, 0.0, 0.0]])

    def embed_text(texts):
        seen.extend(texts)
        return direction.expand(len(texts), 3)

    images = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    got = text_similarity(embed_text, lambda x: x, "a <t> <t>_1 cat", images, [p])
    assert seen == ["a cat"] and got == pytest.approx(0.5)
