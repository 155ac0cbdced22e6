"""core.edit_demo: the frame of the Imagic / SINE demos (setup, scores, figure, report)."""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.core import edit_demo
from diffrepro.core.edit_demo import (
    EditDemoSetup,
    judge_scores,
    quick_setup,
    report_tail,
    rows_figure,
    run_edit_demo,
    write_report,
)

torch.set_num_threads(1)


def toy_setup(logits):
    """Embedding = the image's per-channel means; logits given per image."""
    source = torch.zeros(3, 4, 4)
    source[0] = 1.0
    return EditDemoSetup(
        sd=None, embed=lambda x: x.mean(dim=(2, 3)), identity_logits=lambda x: logits[: len(x)],
        source=source, source_high=None, target=2, label="toy",
    )  # fmt: skip


def test_judge_scores_match_a_float64_reference():
    logits = torch.tensor(
        [[0.0, 1.0, 3.0, 2.0, -1.0, 0.5], [4.0, 3.0, -2.0, 2.0, 1.0, 0.0], [4.0, 3.0, 2.5, 2, 1, 0]]
    )
    setup = toy_setup(logits)
    images = torch.zeros(3, 3, 4, 4)
    images[0, 0] = 1.0
    images[0, 2] = 0.2  # near the source
    images[1, 1] = 1.0
    images[1, 0, :2] = 0.5
    images[2, 2] = 1.0
    out = judge_scores(setup, images, psnr=True)
    assert list(out) == ["fidelity_cos", "psnr_db", "target_prob", "target_top5"]
    l64 = logits.double().numpy()
    probs = np.exp(l64) / np.exp(l64).sum(-1, keepdims=True)
    assert math.isclose(out["target_prob"], probs[:, 2].mean(), rel_tol=1e-6)
    # image 0: the target is the top logit; image 1: the lowest of six (not in the top 5);
    # image 2: the third (in the top 5, not the top 1)
    assert math.isclose(out["target_top5"], 2 / 3, rel_tol=1e-6)
    ref = np.array([1.0, 0.0, 0.0])
    embeds = (np.array([1.0, 0, 0.2]), np.array([0.25, 1, 0]), np.array([0.0, 0, 1]))
    cos = [e @ ref / np.linalg.norm(e) for e in embeds]
    assert math.isclose(out["fidelity_cos"], np.mean(cos), rel_tol=1e-6)
    mse = ((images.double() - setup.source.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
    assert math.isclose(out["psnr_db"], np.mean(10 * np.log10(4.0 / mse)), rel_tol=1e-5)
    assert list(judge_scores(setup, images)) == ["fidelity_cos", "target_prob", "target_top5"]


def test_judge_scores_refuse_non_finite_values():
    setup = toy_setup(torch.tensor([[float("nan"), 0.0, 1.0, 0.0, 0.0, 0.0]]))
    with pytest.raises(FloatingPointError, match="target_prob"):
        judge_scores(setup, torch.ones(1, 3, 4, 4))


def test_quick_setup_is_a_red_square_and_its_2x_render():
    torch.manual_seed(0)
    setup = quick_setup(high=True)
    expected = torch.ones(3, 32, 32)
    expected[:, 8:24, 8:24] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    assert torch.equal(setup.source, expected)
    assert setup.source_high.shape == (3, 64, 64)
    assert torch.equal(setup.source_high[:, ::2, ::2], expected)
    assert setup.target == 1 and setup.label == edit_demo.QUICK_LABEL
    assert setup.identity_logits(setup.source[None]).shape == (1, 8)
    assert quick_setup().source_high is None
    torch.manual_seed(0)
    again = quick_setup(high=True)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(again.embed(x), setup.embed(x))  # the random judge follows torch's seed


def test_rows_figure_size_and_label_cells():
    rows = [("source", -torch.ones(1, 3, 32, 32)), ("two", -torch.ones(2, 3, 32, 32))]
    rows.append(("wide", -torch.ones(1, 3, 32, 48)))
    path = rows_figure(rows, _tmp() / "fig.png", label_width=100, label_chars=3)
    with Image.open(path) as im:
        assert im.size == (100 + 2 * 66, 3 * 68)
        px = np.asarray(im.convert("RGB"))
    assert (px[2:66, 102:166] == 0).all()  # the first image of row one, black (-1)
    assert (px[70:134, 168:230] == 0).all()  # row two's second image
    assert (px[138:202, 102:198] == 0).all()  # a 3:2 image kept 3:2 (96 px wide)


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp())


def test_report_tail_and_write_report():
    lines = report_tail("tiny scale", {"b": 1, "a": [0.5]})
    assert lines[:3] == ["## Scale", "", "tiny scale"] and lines[-1] == ""
    start, end = lines.index("```json"), lines.index("```")
    assert end == start + 2  # one JSON block
    assert json.loads(lines[start + 1]) == {"a": [0.5], "b": 1}
    assert lines[start + 1] == json.dumps({"a": [0.5], "b": 1}, indent=2)  # sorted, indented
    path = write_report(_tmp(), ["# T", "", *lines])
    assert path.name == "report.md" and path.read_text().startswith("# T\n\n## Scale\n")


@dataclass(frozen=True)
class Settings:
    steps: int = 3


def test_run_edit_demo_seeds_times_and_writes_the_config(tmp_path, monkeypatch):
    seen = []

    def experiment(setup, settings, out_dir, seed):
        seen.append((setup.label, settings, out_dir, seed, torch.rand(1).item()))
        return {"value": 1.0}, [("source", setup.source[None])]

    def setup_fn(quick, build):
        seen.append(("setup", quick, build))
        return toy_setup(torch.zeros(1, 6)) if quick else None

    class Moves:
        def to(self, device):
            seen.append(("to", str(device)))

    def with_sd(quick, build):
        setup = setup_fn(quick, build)
        setup.sd = Moves()
        return setup

    monkeypatch.setenv("DIFFREPRO_ZOO_BUILD", "0")
    torch.manual_seed(99)
    setup, metrics, rows = run_edit_demo(
        tmp_path / "a", Settings(), experiment, setup_fn=with_sd, seed=5, quick=True
    )
    torch.manual_seed(1)
    run_edit_demo(tmp_path / "b", Settings(), experiment, setup_fn=with_sd, seed=5, quick=True,
                  build_zoo=True)  # fmt: skip
    assert seen[0] == ("setup", True, False) and seen[1] == ("to", "cpu")
    assert seen[3] == ("setup", True, True)
    label, settings, out_dir, seed, draw = seen[2]
    assert (label, settings, out_dir, seed) == ("toy", Settings(), tmp_path / "a", 5)
    assert draw == seen[5][4]  # seeded by the demo's seed, whatever came before
    assert json.loads((tmp_path / "a" / "config.json").read_text())["steps"] == 3
    assert metrics["value"] == 1.0 and metrics["base_model"] == "toy" and metrics["seconds"] >= 0
    assert rows[0][0] == "source" and setup.label == "toy"
