"""``diffrepro compare restoration``: the contract, the RePaint baseline, the problems, the
measures against numpy references, failures, the cell cache and the CLI (tiny models only)."""

import json
import math

import numpy as np
import pytest
import torch

from diffrepro.core.cli import main
from diffrepro.core.compare.restoration import RestorationBase, load_pixel_base, run_restoration
from diffrepro.core.compare.restoration_baselines import repaint
from diffrepro.core.compare.restoration_metrics import psnr_in, ssim_in
from diffrepro.core.compare.restoration_tasks import make_mask, restoration_task
from diffrepro.core.compare.restoring import (
    InpaintingProblem,
    RestorationMethod,
    RestorationResult,
    check_restoration,
    count_evals,
)
from diffrepro.core.compare.runner import run_all
from diffrepro.core.emoji import find
from diffrepro.core.metrics import ssim

SIZE = 16


@pytest.fixture(scope="module")
def base():
    model, _ = load_pixel_base("unused", torch.device("cpu"), quick=True)
    return model


@pytest.fixture(scope="module")
def task():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1
    corpus = torch.rand(4, 3, SIZE, SIZE, generator=g) * 2 - 1
    return restoration_task(find("dog face"), image, "box", 0.1, corpus)


def test_masks_follow_their_definition():
    g = torch.Generator().manual_seed(0)
    box = make_mask("box", 32, g)
    assert box.sum() == 32 * 32 - 16 * 16 and box[0, 0, 8:24, 8:24].sum() == 0
    half = make_mask("half", 32, g)
    assert half[..., :16].min() == 1 and half[..., 16:].max() == 0
    pixels = make_mask("pixels", 32, g)
    assert 0.25 < float(pixels.mean()) < 0.35  # 70 % unknown
    with pytest.raises(ValueError, match="unknown mask kind"):
        make_mask("ring", 32, g)


def test_a_problem_hides_the_hole_and_adds_fixed_noise(task):
    p = task.problem
    assert torch.all(p.measurement[p.mask.expand_as(p.measurement) == 0] == 0)
    noise = (p.measurement - task.image)[p.mask.expand_as(task.image) == 1]
    assert float(noise.std()) == pytest.approx(0.1, rel=0.15)
    again = restoration_task(find("dog face"), task.image, "box", 0.1, p.corpus)
    torch.testing.assert_close(again.problem.measurement, p.measurement)
    assert again.key() == task.key()
    other = restoration_task(find("dog face"), task.image, "box", 0.2, p.corpus)
    assert other.key() != task.key()


def test_residual_is_the_rms_over_known_pixels(task):
    p = task.problem
    x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    known = p.mask.expand_as(x).numpy().astype(bool)
    diff = (x - p.measurement).numpy().astype(np.float64)[known]
    assert p.residual(x) == pytest.approx(math.sqrt((diff**2).mean()), rel=1e-6)
    assert p.residual(p.measurement) == 0.0
    assert p.residual(task.image) == pytest.approx(0.1, rel=0.15)  # the truth sits at σ


def test_hole_psnr_and_ssim_match_references():
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    region = make_mask("box", 16, g)
    sel = region.expand_as(a).numpy().astype(bool)
    mse = ((a.numpy().astype(np.float64) - b.numpy()) ** 2)[sel].mean()
    assert psnr_in(a, b, region) == pytest.approx(10 * math.log10(4 / mse), rel=1e-9)
    assert psnr_in(a, b, torch.zeros_like(region)) is None
    ones = torch.ones_like(region)
    assert ssim_in(a, b, ones, 7) == pytest.approx(float(ssim(a, b, window_size=7)), rel=1e-6)
    assert ssim_in(a, a, region, 7) == pytest.approx(1.0)


def test_repaint_keeps_the_contract_counts_its_steps_and_follows_the_seed(base, task):
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    a = repaint(base, task.problem, seed=0, steps=5)
    check_restoration(a, task.problem, "repaint")
    assert a.network_evals == 5
    torch.testing.assert_close(repaint(base, task.problem, seed=0, steps=5).restored, a.restored)
    assert not torch.allclose(repaint(base, task.problem, seed=1, steps=5).restored, a.restored)
    known = task.problem.mask.expand_as(a.restored) == 1
    pasted = task.problem.measurement.clamp(-1, 1)[known]
    torch.testing.assert_close(a.restored[known], pasted)  # the last step pastes y exactly
    for k, v in base.unet.state_dict().items():
        assert torch.equal(v, before[k])


def test_count_evals_counts_batch_rows(base):
    x = torch.zeros(3, 3, SIZE, SIZE)
    with torch.no_grad(), count_evals(base.unet) as n:
        base.unet(x, torch.zeros(3, dtype=torch.long))
        base.unet(x[:1], torch.zeros(1, dtype=torch.long))
    assert n[0] == 4


def test_check_restoration_rejects_bad_results(task):
    p = task.problem
    with pytest.raises(ValueError, match="shape"):
        check_restoration(RestorationResult(torch.zeros(1, 3, 8, 8), 1), p, "m")
    nan = torch.full_like(p.measurement, float("nan"))
    with pytest.raises(FloatingPointError, match="not finite"):
        check_restoration(RestorationResult(nan, 1), p, "m")
    with pytest.raises(TypeError):
        check_restoration(p.measurement, p, "m")


def test_a_failing_method_is_recorded_and_the_others_run(base, task, tmp_path):
    from diffrepro.core.compare.editing import load_judge

    calls = []

    def broken(model, problem: InpaintingProblem, *, seed, steps):
        raise RuntimeError("out of luck")

    def copy_measurement(model, problem, *, seed, steps):
        calls.append(seed)
        return RestorationResult(problem.measurement.clamp(-1, 1), 0)

    methods = [RestorationMethod("broken", "Broken", broken),
               RestorationMethod("copy", "Copy", copy_measurement)]  # fmt: skip
    judge = load_judge(torch.device("cpu"), quick=True)
    shared = RestorationBase(model=base, key="tiny", steps=3)
    rows = run_all(methods, [task], [0, 1], shared, judge, tmp_path, run=run_restoration)
    assert [r["status"] for r in rows] == ["failed", "failed", "ok", "ok"]
    assert "out of luck" in rows[0]["error"]
    clamped = task.problem.residual(task.problem.measurement.clamp(-1, 1))
    assert rows[2]["residual"] == pytest.approx(clamped) and rows[2]["psnr_hole"] is not None
    again = run_all(methods, [task], [0, 1], shared, judge, tmp_path, run=run_restoration)
    assert calls == [0, 1]  # the finished cells were read back, not rerun
    np.testing.assert_array_equal(again[2]["images"]["restored"], rows[2]["images"]["restored"])


def test_quick_cli_writes_finite_outputs(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "restoration", "--quick", "--methods", "repaint", "--out", str(out)]
    assert main(argv) == 0  # only the core baseline: installed packages may need zoo models
    metrics = json.loads((out / "metrics.json").read_text())
    repaint_row = metrics["summary"]["repaint"]
    assert repaint_row["network_evals"]["mean"] == 4
    assert math.isfinite(repaint_row["psnr_hole"]["mean"])
    assert (out / "grid.png").stat().st_size > 0 and "repaint" in (out / "table.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sigma", "-1"], "--sigma"),
        (["--methods", "nope"], "nope"),
        (["--masks", "ring"], "--masks"),
        (["--count", "0"], "--count"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code = main(["compare", "restoration", "--quick", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and "Traceback" not in "\n".join(err)


def test_default_problems_take_one_held_out_emoji_per_class_in_turn():
    from diffrepro.core.compare.restoration_tasks import CLASS_ORDER, class_by_class

    picked = class_by_class(len(CLASS_ORDER) + 1)
    assert all(e.heldout for e in picked)
    assert [e.coarse for e in picked[: len(CLASS_ORDER)]] == list(CLASS_ORDER)
    assert picked[-1].coarse == CLASS_ORDER[0] and picked[-1] != picked[0]
