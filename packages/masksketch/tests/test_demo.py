import json

import pytest

from diffrepro.core.papers import get
from diffrepro.masksketch.demo import LAMBDAS, demo, silhouette_iou
from diffrepro.masksketch.premise import auroc


def test_quick_demo_writes_report_figures_and_metrics(tmp_path):
    result = demo(tmp_path, quick=True)
    for name in ("report.md", "figure.png", "tradeoff.png", "samples.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m["lambda_sweep"]) == {str(v) for v in LAMBDAS}
    assert set(m["baselines"]) == {"plain MaskGIT", "SDEdit-like"}
    assert set(m["rejection"]) >= {"random", "structure"}
    assert m["seeds"]["seeds"] == [0, 1]
    assert 0 <= m["premise"]["sym_ce"]["mean_of_layers"] <= 1
    # the structure scorer picks the candidate closest to the sketch
    assert (
        m["rejection"]["structure"]["structure_distance"]
        <= m["rejection"]["random"]["structure_distance"] + 1e-9
    )
    assert "Honest scale" in result.report.read_text()


def test_auroc_matches_pair_counting():
    import torch

    pos, neg = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0.0, 2.0, 5.0, 1.0])
    wins = sum((p > n) + 0.5 * (p == n) for p in pos.tolist() for n in neg.tolist())
    assert auroc(pos, neg) == wins / 12
    assert auroc(torch.tensor([9.0]), torch.tensor([1.0, 2.0])) == 1.0


def test_silhouette_iou():
    import torch

    img = torch.ones(1, 3, 4, 4)
    img[..., :2, :] = 0.0  # top half dark
    alpha = torch.zeros(1, 1, 4, 4)
    alpha[..., :, :2] = 1.0  # left half
    assert float(silhouette_iou(img, alpha)[0]) == pytest.approx(4 / 12)


def test_paper_is_registered():
    paper = get("masksketch")
    assert paper.arxiv == "2302.05496" and "bashkirova2023masksketch" in paper.bibtex
