import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from diffrepro.sdm import demo as demo_module
from diffrepro.sdm.config import PRESETS
from diffrepro.sdm.demo import (
    ITERATIONS,
    SEEDS,
    DemoModels,
    demo,
    evaluate_seed,
    require_finite_results,
    summarise,
)
from diffrepro.sdm.network import SDMNetwork
from diffrepro.sdm.paper import BIBTEX, PAPER

CITATION = Path(__file__).resolve().parents[1] / "CITATION.bib"


def no_zoo(monkeypatch):
    """Any zoo load is a test failure: the quick path must never build or open a zoo model."""
    from diffrepro.core import zoo

    def refuse(*args, **kwargs):
        raise AssertionError("the quick demo touched the zoo")

    monkeypatch.setattr(zoo, "load", refuse)
    monkeypatch.setattr(zoo, "path", refuse)


def test_quick_demo_writes_report_metrics_and_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    no_zoo(monkeypatch)
    result = demo(tmp_path / "out", quick=True)
    out = tmp_path / "out"
    assert result.report == out / "report.md" and result.report.is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1, 2] and SEEDS >= 3
    methods = set(metrics["scores"]) - {"mask"}
    assert {f"sdm T={t}" for t in ITERATIONS} <= methods and ITERATIONS == (1, 2, 4, 8)
    assert any(m.startswith("repaint") for m in methods) and "white fill" in methods
    for t in ITERATIONS:
        row = metrics["scores"][f"sdm T={t}"]
        assert row["evals_per_image"]["mean"] == t
        assert -1 <= row["calibration_spearman"]["mean"] <= 1
        assert len(row["hole_psnr_db"]["per_seed"]) == SEEDS
    values = [
        v
        for block in (metrics["scores"], {"ood": metrics["out_of_domain_photo_crops"]})
        for row in block.values()
        for entry in row.values()
        for v in entry["per_seed"]
    ]
    values += [v for pair in metrics["losses_first_last_window"].values() for v in pair]
    assert values and all(math.isfinite(v) for v in values)  # finite losses and scores
    assert (out / "iterations.png").is_file() and (out / "comparison.png").is_file()
    assert "Paper vs ours" in result.report.read_text() and len(result.headline) == 4
    assert not (tmp_path / "cache").exists()  # quick runs render on the spot, cache nothing


def tiny_models(nan: bool = False) -> DemoModels:
    from diffrepro.core.models.unet import UNetModel
    from diffrepro.core.schedules import Schedule
    from diffrepro.core.zoo.judge import EmojiJudge, JudgeConfig
    from diffrepro.core.zoo.tiny import TINY_UNET

    torch.manual_seed(0)
    cfg = demo_module.quick_config()
    generator = SDMNetwork(cfg.network).eval()
    with torch.no_grad():
        generator.to_out.weight[3:].normal_(0, 0.5)  # a σ that varies
        if nan:
            generator.conv_in.weight.fill_(float("nan"))
    unet = UNetModel(dataclasses.replace(TINY_UNET, image_size=cfg.resolution)).eval()
    history = [{"g": 1.0, "nll": 2.0}, {"g": 0.5, "nll": 1.0}]
    judge = EmojiJudge(JudgeConfig()).eval()
    return DemoModels(cfg, generator, history, unet, Schedule.named("linear", 1000), judge, "t")


def test_demo_rejects_a_nan_model_and_writes_no_report(tmp_path, monkeypatch):
    no_zoo(monkeypatch)
    monkeypatch.setattr(demo_module, "quick_models", lambda out, device: tiny_models(nan=True))
    with pytest.raises(FloatingPointError, match="non-finite weights"):
        demo(tmp_path / "out", quick=True)
    assert not (tmp_path / "out" / "report.md").exists()
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_demo_with_a_nan_score_writes_no_report(tmp_path, monkeypatch):
    no_zoo(monkeypatch)
    monkeypatch.setattr(demo_module, "quick_models", lambda out, device: tiny_models())
    nan_scores = {"sdm T=1": {"hole_psnr_db": math.nan}}
    monkeypatch.setattr(demo_module, "evaluate_seed", lambda *a: (nan_scores, {}, None))
    with pytest.raises(FloatingPointError, match="sdm T=1 hole_psnr_db is nan"):
        demo(tmp_path / "out", quick=True)
    assert not (tmp_path / "out" / "report.md").exists()
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_evaluation_is_seed_deterministic_and_fair():
    models = tiny_models()
    image = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    targets = torch.arange(4)
    a, runs_a, mask_a = evaluate_seed(models, image, targets, 5, quick=True)
    b, runs_b, mask_b = evaluate_seed(models, image, targets, 5, quick=True)
    assert a == b and torch.equal(mask_a, mask_b)
    for name in runs_a:  # every method scored on the same masks, known pixels kept
        assert torch.equal(runs_a[name].image, runs_b[name].image), name
        kept = runs_a[name].image * mask_a
        assert torch.allclose(kept, image * mask_a, atol=1e-6), name
    other = evaluate_seed(models, image, targets, 6, quick=True)[2]
    assert not torch.equal(other, mask_a)  # another seed, other masks


def test_summary_keeps_every_seed():
    summary = summarise([{"m": {"x": 1.0}}, {"m": {"x": 3.0}}])
    expected = {"mean": 2.0, "std": pytest.approx(math.sqrt(2)), "per_seed": [1, 3]}
    assert summary["m"]["x"] == expected


def test_demo_refuses_non_finite_scores():
    with pytest.raises(FloatingPointError, match="T=2 hole_psnr_db is nan"):
        require_finite_results(
            {"T=1": {"hole_psnr_db": 1.0}, "T=2": {"hole_psnr_db": math.nan}}, {}
        )
    entry = {"mean": 1.0, "std": 0.0, "per_seed": [1.0, math.nan]}
    with pytest.raises(FloatingPointError, match="sdm T=4 calibration_spearman is nan"):
        require_finite_results({"sdm T=4": {"calibration_spearman": entry}}, {})
    with pytest.raises(FloatingPointError, match="training loss nll"):
        require_finite_results({}, {"nll": [1.0, math.inf]})


def test_presets_pin_the_loss_weights():
    paper = PRESETS["paper"].train
    assert (paper.adv_weight, paper.perceptual_weight, paper.nll_weight) == (1.0, 2.0, 1e-4)
    for name in ("emoji", "demo"):  # the toy-scale deviation is λ_adv = 0.1, never 0
        assert PRESETS[name].train.adv_weight == 0.1
        assert PRESETS[name].train.nll_weight == 1e-4


def test_paper_entry_and_citation_agree():
    assert PAPER.slug == "sdm" and PAPER.arxiv == "2212.02963"
    if CITATION.is_file():
        assert CITATION.read_text().strip() == BIBTEX.strip()
