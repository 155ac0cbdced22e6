import json

import numpy as np
import pytest

from diffrepro.diffmotion.demo import coupling_correlations, coupling_learned, demo
from diffrepro.diffmotion.metrics import pearson


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
    for key in ("corr_ours_shuffled", "corr_truth", "corr_truth_shuffled", "coupling_margin"):
        assert np.isfinite(metrics["mean"][key]), key
    assert "±" in result.headline[0].ours
    assert "Paper vs ours" in result.report.read_text()
    assert len(result.headline) == 4


def test_coupling_correlations_pair_own_and_every_other_speech():
    rng = np.random.default_rng(0)
    drives = rng.standard_normal((3, 40))
    heights = np.stack([drives, 2 * drives + 1], axis=1)  # (U=3, copies=2, frames)
    own, shuffled = coupling_correlations(heights, drives)
    assert own == pytest.approx(1.0)
    expected = np.mean(
        [pearson(drives[u], drives[v]) for u in range(3) for v in range(3) if v != u]
    )
    assert shuffled == pytest.approx(expected)


def test_coupling_is_learned_only_when_every_seed_beats_the_control_clearly():
    assert coupling_learned([0.6, 0.5, 0.7])
    assert not coupling_learned([0.6, -0.1, 0.7])  # one seed below the control
    assert not coupling_learned([0.05, 0.5, 0.9])  # mean within twice the spread
