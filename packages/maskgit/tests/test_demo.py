import json

from diffrepro.core.papers import get
from diffrepro.maskgit.demo import demo


def test_quick_demo_writes_report_figure_and_metrics(tmp_path):
    result = demo(tmp_path, quick=True)
    for name in ("report.md", "figure.png", "metrics.json", "editing.png", "samples_T8.png"):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["ablation"]) >= {"cosine_T1", "cosine_T8", "cosine_T16", "linear_T8"}
    assert sum(metrics["editing"].values()) == 0  # known tokens never change
    assert metrics["speed"]["maskgit_passes"] == 8 and metrics["speed"]["ar_passes"] == 16
    assert "Honest scale" in result.report.read_text()
    assert any(h.metric.startswith("passes") for h in result.headline)


def test_paper_is_registered():
    paper = get("maskgit")
    assert paper.arxiv == "2202.04200" and "chang2022maskgit" in paper.bibtex
