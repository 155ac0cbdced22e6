"""SINE's ``diffrepro.editing`` entry: the contract (shape, finite, seeded, ``sd`` untouched,
fine-tuning counted), the identifier caption, and that the edit is model-based guidance with the
fine-tuned copy and the reconstruction that copy alone under its caption."""

import copy
from importlib.metadata import entry_points

import pytest
import torch

from diffrepro.core.compare import EditMethod
from diffrepro.core.compare.contract import check_result
from diffrepro.core.finetune_fixtures import assert_bundle_unchanged, bundle_state
from diffrepro.core.seeded_sampling import decode_clamped as decode
from diffrepro.sine import compare
from diffrepro.sine.editing import FineTuned, edit, make_guide
from diffrepro.sine.finetune import finetune
from diffrepro.sine.guidance import Window, active_steps

SOURCE, TARGET = "a red square", "a blue square"


@pytest.fixture
def budget(monkeypatch):
    monkeypatch.setattr(compare, "FINETUNE_STEPS", 3)


def test_entry_point_registers_sine():
    (ep,) = [e for e in entry_points(group="diffrepro.editing") if e.name == "sine"]
    (method,) = ep.load()()
    assert isinstance(method, EditMethod) and method.name == "sine"
    assert method.package == "diffrepro-sine"


def window_steps(sd, steps):
    cfg = compare.compare_config(steps, 32)
    return active_steps(sd.scheduler.grid(steps), Window(cfg.k_min, cfg.k_max, cfg.window_rule))


def test_edit_follows_the_contract_and_leaves_sd_alone(sd, image, budget):
    x = image[None]
    before = bundle_state(sd)
    a = compare.sine_edit(sd, x, SOURCE, TARGET, seed=0, steps=4)
    check_result(a, x, "sine")
    assert a.reconstruction is not None
    assert_bundle_unchanged(sd, before)
    guided = window_steps(sd, 4)
    assert 0 < guided < 4  # K = 500 halves the grid: the count below is not 2 * 4 or 3 * 4
    # 3 fine-tuning forwards, 2 pretrained rows per step, 1 fine-tuned row per guided step
    assert a.unet_evals == 3 + 2 * 4 + guided
    b = compare.sine_edit(sd, x, SOURCE, TARGET, seed=0, steps=4)
    assert torch.equal(a.edited, b.edited) and torch.equal(a.reconstruction, b.reconstruction)
    c = compare.sine_edit(sd, x, SOURCE, TARGET, seed=1, steps=4)
    assert not torch.allclose(a.edited, c.edited)


def test_unet_evals_follow_the_budget(sd, image, monkeypatch):
    monkeypatch.setattr(compare, "FINETUNE_STEPS", 5)
    result = compare.sine_edit(sd, image[None], SOURCE, TARGET, seed=0, steps=6)
    assert result.unet_evals == 5 + 2 * 6 + window_steps(sd, 6)


def test_edit_is_model_based_guidance_and_recon_the_fine_tuned_copy(sd, image, budget, tmp_path):
    result = compare.sine_edit(sd, image[None], SOURCE, TARGET, seed=2, steps=4)
    template, word = compare.identifier_caption(SOURCE)
    cfg = compare.compare_config(4, 32)
    cfg = type(cfg)(**{**cfg.__dict__, "caption": template})
    tuned = FineTuned(copy.deepcopy(sd), "a red sks square")
    finetune(tuned.sd, image, word, cfg, tmp_path, seed=2)
    window = Window(cfg.k_min, cfg.k_max, cfg.window_rule)

    def run(model, prompt, guides):
        z = edit(
            model, prompt, guides, seeds=[2], height=32, width=32,
            guidance_scale=cfg.guidance_scale, num_steps=4,
        )  # fmt: skip
        return decode(sd, z)

    assert torch.equal(result.edited, run(sd, TARGET, [make_guide(tuned, 0.6, window)]))
    assert torch.equal(result.reconstruction, run(tuned.sd, tuned.caption, []))
    assert not torch.allclose(result.edited, run(sd, TARGET, []))  # the guide takes part


def test_identifier_caption_puts_sks_before_the_class_word():
    template, word = compare.identifier_caption("an emoji of a dog face")
    assert template.format(word) == "an emoji of a dog sks face" and word == "face"
    assert compare.identifier_caption("cat") == ("sks {}", "cat")
    template, word = compare.identifier_caption("a {weird} photo of a cat")
    assert template.format(word) == "a {weird} photo of a sks cat"
    with pytest.raises(ValueError, match="non-empty"):
        compare.identifier_caption("  ")


def test_non_square_images_are_refused(sd):
    with pytest.raises(ValueError, match="square"):
        compare.sine_edit(sd, torch.zeros(1, 3, 32, 16), SOURCE, TARGET, seed=0, steps=2)


def test_compare_budget_is_below_the_demo_and_keeps_its_settings():
    from diffrepro.sine.config import PRESETS

    cfg, demo = compare.compare_config(20, 32), PRESETS["demo"]
    assert cfg.num_steps == 20 and cfg.num_samples == 1 and cfg.resolution == 32
    assert cfg.steps < demo.steps and not cfg.patch
    assert (cfg.lr, cfg.guidance_scale, cfg.v, cfg.k_min) == (
        demo.lr, demo.guidance_scale, demo.v, demo.k_min,
    )  # fmt: skip
