"""The demo's code path on the tiny random stack with a stand-in judge (the zoo is not needed)."""

import json

import pytest
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.edict import demo, zoo_access
from diffrepro.edict.config import EDICTConfig


class FakeJudge(torch.nn.Module):
    """Embeds by mean colour per quadrant; "identifies" the nearest of four fixed prototypes."""

    def embed(self, x):
        f = torch.nn.functional.adaptive_avg_pool2d(x.float(), 2).flatten(1)
        return torch.nn.functional.normalize(f, dim=-1)

    def identify(self, x, k=5):
        protos = torch.nn.functional.normalize(torch.eye(12)[:8], dim=-1)
        return (self.embed(x) @ protos.T).topk(k, dim=-1).indices


@pytest.fixture
def fake_zoo(monkeypatch):
    monkeypatch.setattr(
        zoo_access, "base_model", lambda device, dtype: tiny_stable_diffusion(dtype=dtype)
    )
    monkeypatch.setattr(zoo_access, "judge", lambda device: FakeJudge())

    def images(names, size):
        g = torch.Generator().manual_seed(len(names[0]))
        x = torch.rand(len(names), 3, size, size, generator=g) * 2 - 1
        return x, ["a cat", "a dog"][: len(names)], [0, 1][: len(names)], [True, False]

    monkeypatch.setattr(zoo_access, "emoji_images", images)


def test_demo_writes_report_metrics_and_figure(tmp_path, fake_zoo):
    settings = demo.DemoSettings(
        steps_list=(3,), p_values=(0.93, 1.0), p_steps=3, edit=EDICTConfig(steps=4),
        edits=(("cat", "dog"), ("dog", "cat")),
    )  # fmt: skip
    result = demo.run_demo(tmp_path, settings, device="cpu", seed=0)
    for name in ("figure.png", "metrics.json", "report.md", "config.json"):
        assert (tmp_path / name).is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    rows = {(r["method"], r["condition"], r["dtype"]): r for r in metrics["table1"]}
    floor = rows[("VAE only (floor)", "-", "float64")]["mse"]
    for condition in ("unconditional", "conditional"):
        edict = rows[("EDICT", condition, "float64")]
        assert edict["latent_error"] < 1e-10
        assert edict["mse"] == pytest.approx(floor, rel=1e-8)
        assert rows[("DDIM", condition, "float64")]["latent_error"] > 1e-4
        assert rows[("EDICT", condition, "float32")]["latent_error"] < 1e-3
    assert [r["p"] for r in metrics["p_ablation"]] == [0.93, 1.0]
    assert set(metrics["edit_summary"]) == {"EDICT", "DDIM"}
    assert len(result.headline) == 6 and "Table 1" in result.report.read_text()


@pytest.mark.slow
def test_demo_runs_on_the_zoo_api_with_tiny_zoo_entries(tmp_path, monkeypatch, shared_cache):
    """The real zoo code path (tiny 16 px entries, 2 training steps) instead of the stand-ins."""
    from diffrepro.core import zoo
    from diffrepro.core.zoo.tiny import tiny_entries

    for entry in tiny_entries():
        zoo.register(entry, replace=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.setattr(zoo_access, "T2I", "tiny-emoji-t2i")
    monkeypatch.setattr(zoo_access, "JUDGE", "tiny-emoji-judge")
    for name in ("tiny-emoji-t2i", "tiny-emoji-judge"):
        zoo.path(name)  # the demo itself never builds a zoo model
    settings = demo.DemoSettings(
        steps_list=(2,), p_values=(0.93,), p_steps=2, edit=EDICTConfig(steps=3),
        edits=(("cat face", "dog face"), ("orange heart", "green heart")),
    )  # fmt: skip
    result = demo.run_demo(tmp_path / "demo", settings, device="cpu", seed=0)
    metrics = result.metrics
    assert metrics["resolution"] == 16
    assert [r["source_heldout"] for r in metrics["edits"][:2]] == [False, True]
    edict = next(r for r in metrics["table1"] if r["method"] == "EDICT")
    assert edict["latent_error"] < 1e-10
