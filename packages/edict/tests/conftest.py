import sys
from pathlib import Path

import pytest
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion

sys.path.insert(0, str(Path(__file__).parent))  # edict_helpers


@pytest.fixture(autouse=True)
def _one_thread_and_private_cache(monkeypatch, tmp_path):
    """Tiny tests run fastest single-threaded; caches go to a temporary folder."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sd64():
    """The tiny random SD stack in float64 (its output conv is not zero: eps depends on x)."""
    return tiny_stable_diffusion(seed=0, dtype=torch.float64)


@pytest.fixture(scope="session")
def latents64():
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache folder for the tests that render the emoji set (rendered once per session)."""
    return tmp_path_factory.mktemp("cache")
