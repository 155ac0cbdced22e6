"""The trainable sets and the adapter wiring on every UNet layout (spec §5 invariants 1-4)."""

import dataclasses

import pytest
import torch
from ldft_helpers import model_inputs, tiny_sd_unet

from diffrepro.core.models.unet import UNetModel
from diffrepro.core.zoo.ddpm import DDPM_UNET
from diffrepro.limited_data_ft.base import tiny_base
from diffrepro.limited_data_ft.config import AdapterConfig, FTConfig
from diffrepro.limited_data_ft.model import (
    FineTuneModel,
    adapter_budget_count,
    attention_parameter_names,
    choose_rank,
    parameter_report,
    trainable_names,
)

ADM_ATTENTION = ["input_blocks.3.1", "middle_block.1", "output_blocks.0.1", "output_blocks.1.1"]
ADM_PARTS = [
    "norm.weight",
    "norm.bias",
    "qkv.weight",
    "qkv.bias",
    "proj_out.weight",
    "proj_out.bias",
]
UNET2D_ATTENTION = [
    "down_blocks.1.attentions.0",
    "mid_block.attentions.0",
    "up_blocks.0.attentions.0",
    "up_blocks.0.attentions.1",
]
UNET2D_PARTS = [f"{p}.{k}" for p in ("group_norm", "to_q", "to_k", "to_v", "to_out.0")
                for k in ("weight", "bias")]  # fmt: skip


UNETS = {
    "adm": lambda: tiny_base("tiny-adm").unet,
    "adm-cond": lambda: tiny_base("tiny-adm-cond").unet,
    "unet2d": lambda: tiny_base("tiny-unet2d").unet,
    "sd-conv": lambda: tiny_sd_unet(0),
    "sd-linear": lambda: tiny_sd_unet(1, linear=True),
}


def cfg(variant="a3ft", **adapter):
    return FTConfig(variant=variant, adapter=AdapterConfig(**adapter))


ADAPTER_OPTIONS = [
    {},
    {"placement": "before_proj"},
    {"kv_source": "features"},
    {"scale": "vector", "rank": 3},
]


@pytest.mark.parametrize("name", list(UNETS))
@pytest.mark.parametrize("options", ADAPTER_OPTIONS, ids=str)
def test_adapted_model_equals_pretrained_bit_for_bit_at_init(name, options):
    """Identity at init; and the branch is wired in: with s(t) != 0 each adapter changes the
    output, and setting it back to 0 restores the pretrained output exactly."""
    unet = UNETS[name]()
    args, kwargs = model_inputs(unet)
    with torch.no_grad():
        want = unet(*args, **kwargs)
        model = FineTuneModel(unet, cfg(**options))
        assert len(model.adapters) > 0
        assert torch.equal(model(*args, **kwargs), want)
        for key, adapter in model.adapters.items():
            adapter.b_scale.fill_(0.5)
            changed = model(*args, **kwargs)
            adapter.b_scale.zero_()
            assert not torch.allclose(changed, want, atol=1e-6), key
        assert torch.equal(model(*args, **kwargs), want)


def test_before_proj_is_the_branch_through_the_output_projection():
    """placement=before_proj adds W_o·branch; placement=after adds the branch itself."""
    unet = tiny_base("tiny-adm").unet
    args, _ = model_inputs(unet)
    seen = {}
    for placement in ("after", "before_proj"):
        model = FineTuneModel(unet, cfg(placement=placement, rank=2))
        adapter = model.adapters["middle_block-1"]
        block = unet.middle_block[1]
        captured = {}

        def capture(module, inputs, output, captured=captured):
            captured.update(h=inputs[0].detach(), out=output.detach())

        with torch.no_grad():
            adapter.b_scale.fill_(1.0)
            handle = block.register_forward_hook(capture)
            model(*args)
            handle.remove()
            model.remove_hooks()
            h = captured["h"]
            branch = adapter(h.flatten(2).transpose(1, 2), unet.embed(args[1], batch=2))
            base_out = block(h)
        seen[placement] = (captured["out"] - base_out, branch)
    delta, branch = seen["after"]
    torch.testing.assert_close(delta, branch.transpose(1, 2).reshape(delta.shape))
    delta, branch = seen["before_proj"]
    w_o = unet.middle_block[1].proj_out.weight[:, :, 0]
    torch.testing.assert_close(delta, (branch @ w_o.T).transpose(1, 2).reshape(delta.shape))


def test_the_embedding_is_the_one_the_resnets_consume():
    unet = tiny_base("tiny-adm-cond").unet
    args, _ = model_inputs(unet)
    model = FineTuneModel(unet, cfg())
    seen = []
    model.adapters["middle_block-1"].register_forward_pre_hook(lambda m, a: seen.append(a[1]))
    with torch.no_grad():
        model(*args)
    assert torch.equal(seen[0], unet.embed(args[1], args[2], batch=2))


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("attn", [f"unet.{b}.{p}" for b in ADM_ATTENTION for p in ADM_PARTS]),
        ("full", None),
    ],
)
def test_trainable_names_on_adm(variant, expected):
    unet = tiny_base("tiny-adm").unet
    model = FineTuneModel(unet, cfg(variant))
    if expected is None:
        expected = [f"unet.{n}" for n, _ in unet.named_parameters()]
    assert trainable_names(model) == sorted(expected)
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad) == sorted(expected)
    assert len(model.adapters) == 0


def test_trainable_names_a3ft_and_adapter_only():
    unet = tiny_base("tiny-unet2d").unet
    model = FineTuneModel(unet, cfg("a3ft"))
    attn = [f"unet.{b}.{p}" for b in UNET2D_ATTENTION for p in UNET2D_PARTS]
    adapters = [f"adapters.{n}" for n, _ in model.adapters.named_parameters()]
    assert sorted(model.adapters) == sorted(b.replace(".", "-") for b in UNET2D_ATTENTION)
    assert trainable_names(model) == sorted(attn + adapters)
    only = FineTuneModel(tiny_base("tiny-unet2d").unet, cfg("adapter"))
    assert trainable_names(only) == sorted(
        f"adapters.{n}" for n, _ in only.adapters.named_parameters()
    )


def test_sd_unet_attention_set_is_the_attentions_modules():
    unet = tiny_sd_unet()
    names = attention_parameter_names(unet)
    expected = [f"unet.{n}" for n, _ in unet.named_parameters() if ".attentions." in f".{n}"]
    assert sorted(names) == sorted(expected) and names


def test_attn_parts_selects_sub_parameters():
    unet = tiny_base("tiny-adm").unet
    model = FineTuneModel(unet, FTConfig(variant="attn", attn_parts=("qkv",)))
    assert trainable_names(model) == sorted(
        f"unet.{b}.qkv.{k}" for b in ADM_ATTENTION for k in ("weight", "bias")
    )
    with pytest.raises(ValueError, match="attn_parts"):
        FineTuneModel(tiny_base("tiny-adm").unet, FTConfig(variant="attn", attn_parts=("to_q",)))


def one_optimizer_step(model, seed=0):
    args, kwargs = model_inputs(model.unet, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)
    model(*args, **kwargs).square().mean().backward()
    opt.step()


@pytest.mark.parametrize("name", ["adm", "unet2d", "sd-conv"])
@pytest.mark.parametrize("variant", ["full", "attn", "a3ft", "adapter"])
def test_only_the_intended_parameters_change(name, variant):
    unet = UNETS[name]()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    model = FineTuneModel(unet, cfg(variant))
    adapters_before = {k: v.clone() for k, v in model.adapters.state_dict().items()}
    one_optimizer_step(model)
    trainable = set(trainable_names(model))
    changed = set()
    for key, value in unet.state_dict().items():
        if not torch.equal(value, before[key]):
            changed.add(f"unet.{key}")
    for key, value in model.adapters.state_dict().items():
        if not torch.equal(value, adapters_before[key]):
            changed.add(f"adapters.{key}")
    assert changed, "nothing trained"
    assert changed <= trainable, sorted(changed - trainable)[:5]
    if variant in ("full", "attn"):
        assert changed == trainable  # every selected tensor receives gradient


def test_rank_follows_the_budget():
    unet = UNetModel(DDPM_UNET)  # the zoo DDPM's architecture (random weights)
    config = AdapterConfig()
    rank = choose_rank(unet, config)
    base = sum(p.numel() for p in unet.parameters())
    target = 0.018 * base
    err = abs(adapter_budget_count(unet, config, rank) - target)
    assert err <= abs(adapter_budget_count(unet, config, rank - 1) - target)
    assert err <= abs(adapter_budget_count(unet, config, rank + 1) - target)
    model = FineTuneModel(unet, FTConfig())
    report = parameter_report(model)
    assert report["adapter_rank"] == rank
    assert report["adapter_parameters"] == adapter_budget_count(unet, config, rank)
    assert abs(report["adapter_fraction"] - 0.018) < 0.002


def test_parameter_report_counts():
    unet = tiny_base("tiny-adm").unet
    model = FineTuneModel(unet, cfg("a3ft", rank=4))
    report = parameter_report(model)
    base = sum(p.numel() for p in unet.parameters())
    attn = sum(
        p.numel() for n, p in unet.named_parameters() if f"unet.{n}" in trainable_names(model)
    )
    adapters = sum(p.numel() for p in model.adapters.parameters())
    # 4 blocks of C=32, d_e=64, r=4: Cr + d_e r + 3r^2 + rC + d_e + 1 + 2C = 689
    assert adapters == 4 * (32 * 4 + 64 * 4 + 3 * 16 + 4 * 32 + 64 + 1 + 64) == 4 * 689
    assert report["adapter_parameters"] == adapters and report["base_parameters"] == base
    assert report["trainable_parameters"] == attn + adapters
    assert report["trainable_fraction"] == pytest.approx((attn + adapters) / (base + adapters))


def test_gradient_checkpointing_is_refused():
    unet = UNetModel(dataclasses.replace(tiny_base("tiny-adm").unet.config, use_checkpoint=True))
    with pytest.raises(ValueError, match="use_checkpoint"):
        FineTuneModel(unet, cfg())
