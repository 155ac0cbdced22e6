import json
import math

from diffrepro.sine.paper import PAPER


def test_quick_demo_writes_figure_metrics_and_report(tmp_path):
    result = PAPER.run_demo(tmp_path, quick=True)
    assert (tmp_path / "figure.png").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [p["v"] for p in metrics["v_sweep"]] == [0.0, 0.6, 1.0]
    ks = {p["k"]: p for p in metrics["k_sweep"]}
    assert ks[1000]["guided_steps"] == 0 and ks[0]["guided_steps"] == 4
    for key in ("finetuned_alone_edit_prompt", "patch_at_other_size", "no_patch_at_other_size"):
        assert all(math.isfinite(v) for v in metrics[key].values())
    # K above every step and v = 0 are both plain CFG with the pretrained model
    v0 = metrics["v_sweep"][0]
    assert ks[1000]["fidelity_cos"] == v0["fidelity_cos"]
    assert "Paper vs ours" in result.report.read_text() and len(result.headline) == 4
    assert list((tmp_path / "finetune_patch" / "tb").iterdir())
