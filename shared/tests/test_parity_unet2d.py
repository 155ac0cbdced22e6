"""Our UNet2DModel against diffusers': a tiny random model saved with ``save_pretrained`` and
loaded with ours gives the same output (fp32, 1e-5)."""

import pytest

pytest.importorskip("diffusers")

import diffusers  # noqa: E402
import torch  # noqa: E402

from diffrepro.core.models.unet2d import UNet2DModel  # noqa: E402

pytestmark = pytest.mark.parity
torch.set_num_threads(1)

CONFIGS = {
    "default-blocks": dict(
        sample_size=16,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=2,
        attention_head_dim=8,
        norm_num_groups=8,
    ),
    "ddpm-cifar-like": dict(
        sample_size=16,
        block_out_channels=(16, 32),
        down_block_types=("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D"),
        layers_per_block=1,
        attention_head_dim=None,
        norm_num_groups=4,
        norm_eps=1e-6,
        flip_sin_to_cos=False,
        freq_shift=1,
        mid_block_scale_factor=1.4,
        center_input_sample=True,
        attn_norm_num_groups=2,
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_unet2d_matches_diffusers(name, tmp_path):
    torch.manual_seed(0)
    theirs = diffusers.UNet2DModel(**CONFIGS[name]).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    theirs.save_pretrained(tmp_path / "unet")
    ours = UNet2DModel.from_pretrained(tmp_path / "unet")
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 777])
    with torch.no_grad():
        want = theirs(x, t).sample
        got = ours(x, t)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
