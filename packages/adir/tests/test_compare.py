"""ADIR's restoration methods follow the ``diffrepro compare restoration`` contract."""

import dataclasses
from importlib.metadata import entry_points

import pytest
import torch

from diffrepro.adir import compare
from diffrepro.core.compare.restoring import InpaintingProblem, check_restoration
from diffrepro.core.models.unet import UNetModel, unet_preset
from diffrepro.core.schedules import Schedule
from diffrepro.core.zoo.ddpm import PixelDiffusion

STEPS = 6


@pytest.fixture(autouse=True)
def _small_adaptation(monkeypatch):
    """The same code path with a smaller budget (the real one costs seconds per call)."""
    small = dataclasses.replace(compare.COMPARE_ADAPT, lr=1e-2, iterations=3, batch_size=2)
    monkeypatch.setattr(compare, "COMPARE_ADAPT", small)


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    unet = UNetModel(dataclasses.replace(unet_preset("tiny"), model_channels=8)).eval()
    for p in unet.parameters():  # the output conv starts at zero: make ε non-trivial
        p.data.add_(0.02 * torch.randn_like(p))
    return PixelDiffusion(unet, Schedule.named("linear", 1000))


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(1)
    low = torch.rand(7, 3, 4, 4, generator=gen) * 2 - 1
    images = torch.nn.functional.interpolate(low, size=16, mode="bilinear")
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 0
    sigma = 0.05
    noisy = images[:1] + sigma * torch.randn(1, 3, 16, 16, generator=gen)
    return InpaintingProblem(mask * noisy, mask, sigma, images[1:])


def methods():
    return {m.name: m for m in compare.restoration_methods()}


def test_entry_point_registers_both_methods():
    found = [ep for ep in entry_points(group="diffrepro.restoration") if ep.name == "adir"]
    assert found and found[0].value == "diffrepro.adir.compare:restoration_methods"
    assert set(methods()) == {"guided", "adir"}


@pytest.mark.parametrize("name", ["guided", "adir"])
def test_results_follow_the_contract(base, problem, name):
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    restore = methods()[name].restore
    first = check_restoration(restore(base, problem, seed=3, steps=STEPS), problem, name)
    again = restore(base, problem, seed=3, steps=STEPS)
    assert torch.equal(first.restored, again.restored)  # seed-deterministic
    other = restore(base, problem, seed=4, steps=STEPS)
    assert not torch.equal(first.restored, other.restored)
    assert first.restored.abs().max() <= 1
    state = base.unet.state_dict()
    assert state.keys() == before.keys()
    assert all(torch.equal(state[k], v) for k, v in before.items())  # base never modified
    adapt = compare.COMPARE_ADAPT
    expected = STEPS + (adapt.iterations * adapt.batch_size if name == "adir" else 0)
    assert first.network_evals == expected


def test_adapted_differs_from_guided_and_known_pixels_sit_at_the_noise_level(base, problem):
    guided = methods()["guided"].restore(base, problem, seed=3, steps=STEPS)
    adapted = methods()["adir"].restore(base, problem, seed=3, steps=STEPS)
    assert not torch.allclose(guided.restored, adapted.restored, atol=1e-4)
    for result in (guided, adapted):  # final discrepancy projection: residual <= σ (+ clamp)
        assert problem.residual(result.restored) <= problem.sigma * 1.05
