"""Golden outputs of the denoisers on a fixed input and seed (float64), recorded from this
implementation once its equations were pinned by the other tests: any change of an index, a
coordinate, the fusion, the flow input or the conditioning path moves them."""

import dataclasses

import pytest
import torch

from diffrepro.vidm.config import preset
from diffrepro.vidm.content import ContentUNet
from diffrepro.vidm.motion_unet import MotionUNet

TINY = preset("tiny")

GOLDEN = {  # out[:, :, 2, 5] for t = (250, 900), n = (1, 4)
    "posgn": [-0.005618, -0.008209, -0.575203, 1.281153, -1.122335, 0.101488,
              -1.495735, -1.143731, -0.579782, 0.410442, 0.059643, -0.937612],
    "posgn_off": [0.408118, -0.194766, 0.254129, 0.592322, 0.023863, 0.367956,
                  0.618402, 0.727651, 0.433053, -0.992031, -0.315614, -1.054963],
    "content": [1.108584, 0.106617, 0.110118, 0.9382, -1.010299, 0.823256,
                0.006041, 1.203093, 0.441618, 0.765237, -0.654269, 0.897962],
}  # fmt: skip


def perturb(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def inputs():
    g = torch.Generator().manual_seed(0)
    x, first = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    flow = torch.randn(2, 2, 8, 8, generator=g) * 3
    return x.double(), first.double(), flow.double()


@pytest.mark.parametrize("posgn", [True, False])
def test_motion_denoiser_output_matches_the_golden_values(posgn):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY.motion, num_frames=6, posgn=posgn)
    model = perturb(MotionUNet(cfg).double())
    x, first, flow = inputs()
    with torch.no_grad():
        out = model(x, torch.tensor([250, 900]), torch.tensor([1, 4]), first, flow)
    expected = torch.tensor(GOLDEN["posgn" if posgn else "posgn_off"], dtype=torch.float64)
    torch.testing.assert_close(out[:, :, 2, 5].flatten(), expected, atol=2e-6, rtol=0)


def test_content_denoiser_output_matches_the_golden_values():
    torch.manual_seed(0)
    model = perturb(ContentUNet(TINY.content).double())
    x = inputs()[0]
    with torch.no_grad():
        out = model(x, torch.tensor([250, 900]))
    expected = torch.tensor(GOLDEN["content"], dtype=torch.float64)
    torch.testing.assert_close(out[:, :, 2, 5].flatten(), expected, atol=2e-6, rtol=0)
