"""Our blocks against diffusers' implementations of the same conventions."""

import pytest

pytest.importorskip("diffusers")

import torch  # noqa: E402
from diffusers.models.embeddings import get_timestep_embedding  # noqa: E402

from diffrepro.core.nn import timestep_embedding  # noqa: E402

pytestmark = pytest.mark.parity


@pytest.mark.parametrize("cos_first", [True, False])
@pytest.mark.parametrize("shift", [0.0, 1.0])
@pytest.mark.parametrize("dim", [32, 33])
def test_timestep_embedding_matches_diffusers(cos_first: bool, shift: float, dim: int) -> None:
    t = torch.tensor([0, 1, 250, 999])
    theirs = get_timestep_embedding(t, dim, flip_sin_to_cos=cos_first, downscale_freq_shift=shift)
    ours = timestep_embedding(t, dim, cos_first=cos_first, freq_shift=shift)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
