import json
import math
from pathlib import Path

import pytest
import torch

from diffrepro.core.checkpoints import save_checkpoint
from diffrepro.sdm import demo as demo_module
from diffrepro.sdm.config import PRESETS
from diffrepro.sdm.demo import CACHE_VERSION, cache_dir, demo, require_finite_results
from diffrepro.sdm.loading import generator_from_checkpoint
from diffrepro.sdm.network import SDMNetwork
from diffrepro.sdm.paper import BIBTEX, PAPER

CITATION = Path(__file__).resolve().parents[1] / "CITATION.bib"


def test_quick_demo_writes_report_metrics_and_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = demo(tmp_path / "out", quick=True)
    out = tmp_path / "out"
    assert result.report == out / "report.md" and result.report.is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"T=1", "T=2", "T=3"}
    assert -1 <= metrics["scores"]["T=3"]["calibration_spearman"] <= 1
    values = [v for row in metrics["scores"].values() for v in row.values()]
    values += [v for pair in metrics["losses_first_last_window"].values() for v in pair]
    assert values and all(math.isfinite(v) for v in values)  # a NaN model is never a result
    assert (out / "iterations.png").is_file() and any((out / "tensorboard").iterdir())
    assert "Paper vs ours" in result.report.read_text() and len(result.headline) == 4
    assert not (tmp_path / "cache").exists()  # quick runs are not cached


def test_paper_entry_and_citation_agree():
    assert PAPER.slug == "sdm" and PAPER.arxiv == "2212.02963"
    if CITATION.is_file():
        assert CITATION.read_text().strip() == BIBTEX.strip()


def test_demo_refuses_non_finite_scores():
    with pytest.raises(FloatingPointError, match="T=2 hole_psnr_db is nan"):
        require_finite_results(
            {"T=1": {"hole_psnr_db": 1.0}, "T=2": {"hole_psnr_db": math.nan}}, {}
        )
    with pytest.raises(FloatingPointError, match="training loss nll"):
        require_finite_results({}, {"nll": [1.0, math.inf]})


def test_cache_of_older_versions_is_never_read(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "diffrepro" / "sdm" / f"v{CACHE_VERSION}"
    assert CACHE_VERSION >= 6  # 5 and older could hold the NaN generator of issue 14


def test_a_non_finite_checkpoint_is_refused(tmp_path):
    cfg = PRESETS["tiny"]
    state = SDMNetwork(cfg.network).state_dict()
    state["conv_in.weight"] = torch.full_like(state["conv_in.weight"], float("nan"))
    save_checkpoint(tmp_path / "g.safetensors", state, cfg)
    with pytest.raises(FloatingPointError, match="non-finite weights"):
        generator_from_checkpoint(tmp_path / "g.safetensors")


def test_demo_with_a_nan_score_writes_no_report(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    nan_scores = {"T=1": {"hole_psnr_db": math.nan}}
    monkeypatch.setattr(demo_module, "evaluate", lambda *args: (nan_scores, {}))
    with pytest.raises(FloatingPointError, match="T=1 hole_psnr_db is nan"):
        demo(tmp_path / "out", quick=True)
    assert not (tmp_path / "out" / "report.md").exists()
    assert not (tmp_path / "out" / "metrics.json").exists()
