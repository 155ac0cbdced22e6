"""LoRA adaptation: an exact no-op at start, only LoRA parameters train, parameter count."""

import copy

import torch
from torch import nn

from diffrepro.adir.adapt import adapted_copy, add_lora, finetune
from diffrepro.adir.config import PRESETS, AdaptConfig
from diffrepro.adir.model import build_model, train_schedule
from diffrepro.core.nn.lora import LoRAConv, lora_layers, lora_parameters, unmerge_lora

CFG = PRESETS["tiny"]


def tiny_model():
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    for p in model.parameters():  # the output conv is zero-initialised: make outputs non-trivial
        p.data.add_(0.01 * torch.randn_like(p))
    return model


def inputs():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 16, 16, generator=gen), torch.tensor([10, 700])


def test_lora_starts_as_exact_no_op_on_every_conv():
    model = tiny_model()
    base = copy.deepcopy(model)
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    attention = [n for n in convs if n.endswith((".qkv", ".proj_out"))]
    assert attention and all(isinstance(model.get_submodule(n), nn.Conv1d) for n in attention)
    wrapped = add_lora(model, AdaptConfig(rank=4, alpha=2.0))
    assert sorted(wrapped) == sorted(convs)  # Conv2d and the ADM attention's Conv1d
    x, t = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, t), base(x, t))
    expected = sum(  # r · (C_in · Π kernel + C_out) per layer
        4 * (m.base.in_channels * m.base.weight[0, 0].numel() + m.base.out_channels)
        for m in model.modules()
        if isinstance(m, LoRAConv)
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == expected
    assert {id(p) for p in trainable} == {id(p) for p in lora_parameters(model)}


def test_finetuning_changes_only_lora_parameters_and_lowers_the_loss():
    model = tiny_model()
    add_lora(model, AdaptConfig(rank=2, alpha=1.0))
    frozen = {
        k: v.clone() for k, v in model.state_dict().items() if ".down." not in k and ".up." not in k
    }
    images = torch.zeros(3, 3, 16, 16)  # a flat target is easy to fit
    cfg = AdaptConfig(rank=2, alpha=1.0, lr=1e-2, iterations=30, batch_size=3)
    losses = finetune(
        model, images, train_schedule(CFG), cfg, generator=torch.Generator().manual_seed(0)
    )
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("up.weight"))
    assert sum(losses[-5:]) < sum(losses[:5])


def test_adapted_copy_leaves_the_original_untouched():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    adapted = adapted_copy(
        model, images, train_schedule(CFG), AdaptConfig(rank=2, iterations=2, batch_size=2)
    )
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert any(isinstance(m, LoRAConv) for m in adapted.modules())
    assert not any(isinstance(m, LoRAConv) for m in model.modules())


def test_adapted_copy_is_merged_into_the_same_function():
    model = tiny_model()
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    adapted = adapted_copy(
        model, images, train_schedule(CFG), AdaptConfig(rank=2, lr=1e-2, iterations=3, batch_size=2)
    )
    assert all(layer.merged for layer in lora_layers(adapted))
    x, t = inputs()
    with torch.no_grad():
        merged = adapted(x, t)
        unmerge_lora(adapted)
        unmerged = adapted(x, t)
        original = model(x, t)
    assert not torch.allclose(unmerged, original, atol=1e-5)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-4)


def test_lora_scale_is_alpha_over_rank_in_outputs_and_merge():
    model = tiny_model()
    add_lora(model, AdaptConfig(rank=16, alpha=8.0))
    layers = list(lora_layers(model))
    assert layers and all(layer.scale == 0.5 for layer in layers)
    layer = next(m for m in model.modules() if isinstance(m, LoRAConv))
    torch.nn.init.normal_(layer.up.weight, generator=torch.Generator().manual_seed(0))
    x = torch.randn(1, layer.base.in_channels, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = layer.base(x) + 0.5 * layer.up(layer.down(x))
        torch.testing.assert_close(layer(x), expected)
        layer.merge()
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-4)


def test_same_generator_same_adapted_model_whatever_the_global_rng():
    model = tiny_model()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    cfg = AdaptConfig(rank=2, lr=1e-2, iterations=2, batch_size=2)
    runs = []
    for global_seed in (5, 6):
        torch.manual_seed(global_seed)
        adapted = adapted_copy(
            model, images, train_schedule(CFG), cfg, generator=torch.Generator().manual_seed(0)
        )
        runs.append(adapted.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
