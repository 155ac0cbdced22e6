"""SDM under the ``diffrepro compare restoration`` contract (core ``compare.restoring``)."""

from importlib.metadata import entry_points

import numpy as np
import pytest
import torch

from diffrepro.core.compare.restoring import (
    RESTORATION_GROUP,
    InpaintingProblem,
    check_restoration,
)
from diffrepro.sdm.compare import ITERATIONS, restoration_methods, restore, sdm_restore
from diffrepro.sdm.config import PRESETS
from diffrepro.sdm.masks import generate_masks
from diffrepro.sdm.network import SDMNetwork


def tiny_generator() -> SDMNetwork:
    torch.manual_seed(0)
    generator = SDMNetwork(PRESETS["tiny"].network).eval()
    with torch.no_grad():
        generator.to_out.weight[3:].normal_(0, 0.5)
    return generator


def problem(sigma: float = 0.05, seed: int = 0) -> InpaintingProblem:
    gen = torch.Generator().manual_seed(seed)
    clean = torch.rand(1, 3, 16, 16, generator=gen) * 2 - 1
    mask = generate_masks(PRESETS["tiny"].masks, 1, np.random.default_rng(seed))
    noisy = clean + sigma * torch.randn(clean.shape, generator=gen)
    corpus = torch.zeros(2, 3, 16, 16)
    return InpaintingProblem(mask * noisy, mask, sigma, corpus)


def test_restore_follows_the_contract():
    generator, p = tiny_generator(), problem()
    result = check_restoration(sdm_restore(generator, p, seed=3), p, "sdm")
    assert result.restored.shape == p.measurement.shape
    assert bool(torch.isfinite(result.restored).all())
    assert result.network_evals == ITERATIONS == 4  # one generator row per iteration
    known = p.mask.expand_as(result.restored).bool()
    assert torch.equal(result.restored[known], p.measurement[known])  # known pixels kept
    assert p.residual(result.restored) == 0.0
    assert (result.restored[~known] != 0).any()  # the hole was filled


def test_restore_is_seed_deterministic():
    generator, p = tiny_generator(), problem()
    a = sdm_restore(generator, p, seed=1).restored
    b = sdm_restore(generator, p, seed=1).restored
    c = sdm_restore(generator, p, seed=2).restored
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_iterations_and_wrong_size():
    generator, p = tiny_generator(), problem()
    assert sdm_restore(generator, p, seed=0, iterations=2).network_evals == 2
    big = InpaintingProblem(torch.zeros(1, 3, 32, 32), torch.ones(1, 1, 32, 32), 0.0, p.corpus)
    with pytest.raises(ValueError, match="the generator takes 16×16"):
        sdm_restore(generator, big, seed=0)


def test_registered_for_compare_restoration():
    (method,) = restoration_methods()
    assert method.name == "sdm" and method.package == "diffrepro-sdm"
    names = {ep.name: ep.value for ep in entry_points(group=RESTORATION_GROUP)}
    assert names.get("sdm") == "diffrepro.sdm.compare:restoration_methods"


def test_missing_zoo_entry_is_the_zoo_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="sdm-emoji") as err:
        restore(None, problem(), seed=0, steps=50)
    assert len(str(err.value).splitlines()) == 1 and "zoo build sdm-emoji" in str(err.value)
    assert not any(tmp_path.iterdir())  # nothing was built
