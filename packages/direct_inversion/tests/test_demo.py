"""The demo's measured part on the tiny stack with a tiny random judge (the zoo is not needed)."""

import dataclasses
import json

import pytest
import torch

from diffrepro.direct_inversion import demo as demo_module
from diffrepro.direct_inversion.demo import DemoTask, plan, run


class TinyJudge(torch.nn.Module):
    """Random conv features, 7 identity prototypes: only the interface of the zoo judge."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.protos = torch.nn.Parameter(torch.randn(7, 8))

    def embed(self, x):
        return torch.nn.functional.normalize(self.conv(x).mean(dim=(2, 3)), dim=-1)

    def identity_logits(self, x):
        return 10 * self.embed(x) @ torch.nn.functional.normalize(self.protos, dim=-1).T


def test_demo_writes_its_report_and_measures_exactness(sd64, tmp_path):
    sources = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    task = DemoTask(sources, (1, 4), ("a red cat", "a dog"), ("x -> cat", "y -> dog"))
    cfg = dataclasses.replace(plan(quick=True).cfg, steps=5, inv_steps=5)
    p = dataclasses.replace(plan(quick=True), cfg=cfg, ws=(1.0, 3.0))
    result = run(tmp_path, sd64, TinyJudge(), task, p, seed=0)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["lambda1_consistent_rel"] < 1e-10
    assert metrics["lambda1_official_rel"] > 1e-4
    assert metrics["ddim_resample_rel"] > 1e-4
    assert len(metrics["rows"]) == len(p.ws) * len(p.lams)
    exact = [r for r in metrics["rows"] if r["lam"] == 1.0]
    free = [r for r in metrics["rows"] if r["lam"] == 0.0]
    assert abs(exact[0]["judge_distance"] - exact[1]["judge_distance"]) < 1e-6  # w is ignored
    assert abs(free[0]["judge_distance"] - free[1]["judge_distance"]) > 1e-4
    for name in ("figure.png", "tradeoff.png", "report.md"):
        assert (tmp_path / name).is_file()
    report = (tmp_path / "report.md").read_text()
    assert "Paper vs ours" in report and "Scale and honesty" in report
    assert result.report == tmp_path / "report.md" and len(result.headline) == 5
    assert sd64.dtype == torch.float64


def test_demo_without_a_zoo_is_one_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_zoo(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "diffrepro.core" and fromlist and "zoo" in fromlist:
            raise ImportError("no zoo")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_zoo)
    with pytest.raises(ValueError, match="needs the core zoo"):
        demo_module.load_assets("cpu")


def test_demo_names_the_build_command_when_a_zoo_model_is_missing(tmp_path):
    from diffrepro.core import zoo
    from diffrepro.core.zoo.tiny import tiny_entries

    for entry in tiny_entries():
        zoo.register(entry, replace=True)
    with pytest.raises(FileNotFoundError, match="diffrepro zoo build tiny-emoji-t2i"):
        demo_module.demo(
            tmp_path / "run", model="tiny-emoji-t2i", root=tmp_path / "empty", build=False
        )
    assert not (tmp_path / "run").exists()


def test_demo_end_to_end_on_the_tiny_zoo_variants(tmp_path):
    from diffrepro.core import zoo
    from diffrepro.core.zoo.tiny import tiny_entries

    for entry in tiny_entries():
        zoo.register(entry, replace=True)
    out = tmp_path / "run"
    result = demo_module.demo(
        out,
        quick=True,
        model="tiny-emoji-t2i",
        judge="tiny-emoji-judge",
        root=tmp_path / "zoo",
        build=True,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "tiny-emoji-t2i" and metrics["pairs"][0] == "dog face -> cat face"
    assert metrics["lambda1_consistent_rel"] < 1e-10 < metrics["lambda1_official_rel"]
    assert result.report.is_file() and (out / "figure.png").is_file()
