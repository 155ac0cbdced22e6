import dataclasses

import pytest
import torch
import torch.nn.functional as F

from diffrepro.core.attention import attention_probs
from diffrepro.sdm.attention import UncertaintyGuidedAttention
from diffrepro.sdm.config import PRESETS
from diffrepro.sdm.discriminator import Discriminator
from diffrepro.sdm.modulated import ModulatedConv2d
from diffrepro.sdm.network import SDMNetwork


def test_network_maps_seven_channels_to_mean_and_bounded_sigma():
    cfg = PRESETS["tiny"]
    net = SDMNetwork(cfg.network)
    assert net.conv_in.in_channels == 7 and net.to_out.weight.shape[0] == 6
    x = torch.randn(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    mean, sigma = net(x, mask, mask, 1 - mask, torch.tensor([0.0, 0.5]))
    assert mean.shape == sigma.shape == (2, 3, 16, 16)
    floor = cfg.network.sigma_floor
    assert floor > 0 and bool(((sigma >= floor) & (sigma <= 1)).all())
    expected = floor + (1 - floor) * 0.5  # σ head starts at zero logits
    assert torch.allclose(sigma, torch.full_like(sigma, expected))
    with pytest.raises(ValueError, match="16² images"):
        net(torch.randn(1, 3, 8, 8), *[torch.ones(1, 1, 8, 8)] * 3, torch.zeros(1))


def test_sigma_never_drops_below_the_floor():
    cfg = PRESETS["tiny"].network
    net = SDMNetwork(cfg)
    with torch.no_grad():
        net.to_out.bias[3:] = -1e4  # saturated logits: a plain sigmoid gives σ = 0
    mask = torch.ones(1, 1, 16, 16)
    _, sigma = net(torch.randn(1, 3, 16, 16), mask, mask, 1 - mask, torch.zeros(1))
    assert torch.allclose(sigma, torch.full_like(sigma, cfg.sigma_floor))
    with pytest.raises(ValueError, match="sigma_floor"):
        SDMNetwork(dataclasses.replace(cfg, sigma_floor=1.0))


def test_uga_with_zero_or_constant_bias_equals_plain_attention():
    torch.manual_seed(0)
    uga = UncertaintyGuidedAttention(16, num_heads=2, num_groups=4)
    torch.nn.init.normal_(uga.attention.proj_out.weight)  # make the attention visible
    x, u = torch.randn(2, 16, 4, 4), torch.rand(2, 1, 8, 8)
    plain = uga.attention(x)
    assert torch.equal(uga(x, u), plain)  # the bias net starts at zero
    last = uga.bias_net[-1]
    torch.nn.init.constant_(last.bias, 3.0)  # a constant bias per key cancels in the softmax
    assert torch.allclose(uga(x, u), plain, atol=1e-5)
    torch.nn.init.normal_(last.weight)
    assert not torch.allclose(uga(x, u), plain, atol=1e-3)


def test_uga_bias_is_per_key_and_can_silence_a_key():
    uga = UncertaintyGuidedAttention(8, num_heads=2, num_groups=4)
    bias = uga.key_bias(torch.rand(3, 1, 8, 8), (4, 4))
    assert bias.shape == (3, 2, 1, 16)
    q, k = torch.randn(1, 2, 16, 4), torch.randn(1, 2, 16, 4)
    silenced = torch.zeros(1, 2, 1, 16)
    silenced[..., 5] = -float("inf")
    probs = attention_probs(q, k, bias=silenced)
    assert bool((probs[..., 5] == 0).all())


def test_modulated_conv_equals_convolving_with_per_sample_weights():
    torch.manual_seed(1)
    conv = ModulatedConv2d(4, 5, 3, style_dim=6)
    torch.nn.init.normal_(conv.affine.weight)
    torch.nn.init.normal_(conv.bias)
    x, style = torch.randn(3, 4, 7, 7), torch.randn(3, 6)
    scales = conv.affine(style)
    outputs = []
    for b in range(3):
        weight = conv.weight * scales[b][None, :, None, None]
        weight = weight / weight.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        outputs.append(F.conv2d(x[b : b + 1], weight, conv.bias, padding=1))
    assert torch.allclose(conv(x, style), torch.cat(outputs), atol=1e-5)


def test_discriminator_scores_each_image_with_its_mask():
    cfg = PRESETS["tiny"].discriminator
    disc = Discriminator(cfg)
    assert disc.from_rgb.in_channels == 4  # mask channel concatenated
    logits = disc(torch.randn(3, 3, 16, 16), torch.ones(3, 1, 16, 16))
    assert logits.shape == (3,)
    with pytest.raises(ValueError, match="power-of-two"):
        Discriminator(type(cfg)(resolution=24))
