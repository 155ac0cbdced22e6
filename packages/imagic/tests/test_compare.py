"""Imagic's ``diffrepro.editing`` entry: the contract (shape, finite, seeded, ``sd`` untouched,
training counted) and that edit / reconstruction are stage C at eta 0.7 / 0 of the fitted run."""

import copy
from importlib.metadata import entry_points

import pytest
import torch

from diffrepro.core.compare import EditMethod
from diffrepro.core.compare.contract import check_result
from diffrepro.core.finetune_fixtures import assert_bundle_unchanged, bundle_state
from diffrepro.core.seeded_sampling import decode_clamped as decode
from diffrepro.imagic import compare
from diffrepro.imagic.pipeline import fit
from diffrepro.imagic.sampling import sample_embedding
from diffrepro.imagic.stages import interpolate

SOURCE, TARGET = "a red square", "a blue square"


@pytest.fixture
def budget(monkeypatch):
    monkeypatch.setattr(compare, "EMBED_STEPS", 3)
    monkeypatch.setattr(compare, "FINETUNE_STEPS", 2)


def test_entry_point_registers_imagic():
    (ep,) = [e for e in entry_points(group="diffrepro.editing") if e.name == "imagic"]
    (method,) = ep.load()()
    assert isinstance(method, EditMethod) and method.name == "imagic"
    assert method.package == "diffrepro-imagic"


def test_edit_follows_the_contract_and_leaves_sd_alone(sd, image, budget):
    x = image[None]
    before = bundle_state(sd)
    a = compare.imagic_edit(sd, x, SOURCE, TARGET, seed=0, steps=4)
    check_result(a, x, "imagic")
    assert a.reconstruction is not None and a.edited.shape == x.shape
    assert_bundle_unchanged(sd, before)
    # stage A 3 + stage B 2 forwards (batch 1), then 4 guided steps of 2 rows
    assert a.unet_evals == 3 + 2 + 4 * 2
    b = compare.imagic_edit(sd, x, SOURCE, TARGET, seed=0, steps=4)
    assert torch.equal(a.edited, b.edited) and torch.equal(a.reconstruction, b.reconstruction)
    c = compare.imagic_edit(sd, x, SOURCE, TARGET, seed=1, steps=4)
    assert not torch.allclose(a.edited, c.edited)
    assert not torch.allclose(a.edited, a.reconstruction)


def test_unet_evals_follow_the_budget(sd, image, monkeypatch):
    monkeypatch.setattr(compare, "EMBED_STEPS", 2)
    monkeypatch.setattr(compare, "FINETUNE_STEPS", 5)
    result = compare.imagic_edit(sd, image[None], SOURCE, TARGET, seed=0, steps=3)
    assert result.unet_evals == 2 + 5 + 3 * 2


def test_edit_and_reconstruction_are_stage_c_at_eta_and_zero(sd, image, budget, tmp_path):
    result = compare.imagic_edit(sd, image[None], SOURCE, TARGET, seed=2, steps=3)
    cfg = compare.compare_config(3)
    assert cfg.embed_steps == 3 and cfg.finetune_steps == 2 and cfg.eta == 0.7
    work = copy.deepcopy(sd)
    fitted = fit(work, image, TARGET, cfg, tmp_path, 2)

    def stage_c(eta):
        e = interpolate(fitted.e_tgt, fitted.e_opt, eta)
        z = sample_embedding(
            work, e, seeds=[2], height=32, width=32, guidance_scale=cfg.guidance_scale,
            num_steps=3,
        )  # fmt: skip
        return decode(work, z)

    assert torch.equal(result.edited, stage_c(0.7))
    assert torch.equal(result.reconstruction, stage_c(0.0))
    assert not torch.allclose(result.edited, stage_c(1.0))


def test_the_source_prompt_is_not_used(sd, image, budget):
    a = compare.imagic_edit(sd, image[None], SOURCE, TARGET, seed=0, steps=3)
    b = compare.imagic_edit(sd, image[None], "something else", TARGET, seed=0, steps=3)
    assert torch.equal(a.edited, b.edited)


def test_compare_budget_is_below_the_demo_and_keeps_its_learning_rates():
    from diffrepro.imagic.config import PRESETS

    cfg, demo = compare.compare_config(20), PRESETS["demo"]
    assert cfg.num_steps == 20 and cfg.num_samples == 1
    assert cfg.embed_steps < demo.embed_steps and cfg.finetune_steps < demo.finetune_steps
    assert (cfg.embed_lr, cfg.finetune_lr, cfg.guidance_scale) == (
        demo.embed_lr, demo.finetune_lr, demo.guidance_scale,
    )  # fmt: skip
