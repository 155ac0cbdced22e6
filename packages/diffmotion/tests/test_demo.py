import json

from diffrepro.diffmotion.demo import demo


def test_quick_demo_writes_report_metrics_and_figures(tmp_path):
    result = demo(tmp_path, quick=True)
    for name in (
        "report.md",
        "metrics.json",
        "gestures.gif",
        "speech_and_motion.png",
        "config.json",
    ):
        assert (tmp_path / name).is_file(), name
    for logs in ("train", "demo"):
        assert list((tmp_path / "tb" / logs).iterdir()), logs
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["seeds"] == [0, 1, 2] and len(metrics["per_seed"]) == 3
    assert metrics["mean"]["diversity_ours"] > 0.0  # different noise gives different gestures
    assert metrics["sd"]["corr_ours"] >= 0.0
    assert "±" in result.headline[0].ours
    assert "Paper vs ours" in result.report.read_text()
    assert len(result.headline) == 4
