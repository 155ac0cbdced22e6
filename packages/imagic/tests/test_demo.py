import json
import math

from diffrepro.imagic.paper import PAPER


def test_quick_demo_writes_figures_metrics_and_report(tmp_path):
    result = PAPER.run_demo(tmp_path, quick=True)
    assert (tmp_path / "figure.png").is_file() and (tmp_path / "tradeoff.png").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["curves"]) == {"imagic", "no_stage_b", "no_stage_a"}
    for curve in metrics["curves"].values():
        assert [p["eta"] for p in curve] == [0.0, 0.5, 1.0]
        assert all(math.isfinite(v) for p in curve for v in p.values())
    a = metrics["curves"]["no_stage_a"]
    assert a[0]["fidelity_cos"] == a[-1]["fidelity_cos"]  # one embedding: eta has no effect
    assert "Paper vs ours" in result.report.read_text() and len(result.headline) == 4
    assert list((tmp_path / "imagic" / "stage_b" / "tb").iterdir())
