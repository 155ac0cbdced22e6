"""The demo's quick path end to end (random tiny UNet, random feature net: seconds)."""

import json

from diffrepro.limited_data_ft.demo import QUICK, VARIANTS, demo


def test_quick_demo_writes_report_figures_and_curves(tmp_path):
    result = demo(tmp_path, quick=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "samples.png").is_file()
    assert result.report == tmp_path / "report.md" and "QUICK" in result.report.read_text()
    for shots in QUICK.shots:
        runs = metrics["runs"][str(shots)]
        assert sorted(runs) == sorted(VARIANTS)
        for variant in VARIANTS:
            assert len(runs[variant]) == QUICK.seeds
            steps = [p["step"] for p in runs[variant][0]["curve"]]
            assert steps == list(range(0, QUICK.ft.steps + 1, QUICK.eval_every))
    assert metrics["parameters"]["a3ft"]["adapter_blocks"] == 4
    assert list((tmp_path / "ft_runs").glob("*/*/*/tb"))
