import json
from pathlib import Path

from diffrepro.sdm.demo import demo
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
    assert (out / "iterations.png").is_file() and any((out / "tensorboard").iterdir())
    assert "Paper vs ours" in result.report.read_text() and len(result.headline) == 4
    assert not (tmp_path / "cache").exists()  # quick runs are not cached


def test_paper_entry_and_citation_agree():
    assert PAPER.slug == "sdm" and PAPER.arxiv == "2212.02963"
    if CITATION.is_file():
        assert CITATION.read_text().strip() == BIBTEX.strip()
