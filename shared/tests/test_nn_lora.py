import pytest
import torch
from torch import nn

from diffrepro.core.nn import (
    LoRAConv,
    LoRALinear,
    apply_lora,
    lora_parameters,
    merge_lora,
    unmerge_lora,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )


def _perturb_lora(model: nn.Module) -> None:
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(std=0.1)


def test_apply_lora_is_exact_noop_and_only_lora_trains() -> None:
    model, x = _model(), torch.randn(2, 3, 8, 8)
    before = model(x)
    names = apply_lora(model, (nn.Conv2d, nn.Linear), rank=2, alpha=4.0)
    assert names == ["0", "2", "4"]
    assert isinstance(model[0], LoRAConv) and isinstance(model[4], LoRALinear)
    assert torch.equal(model(x), before)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{i}.{part}.weight" for i in (0, 2, 4) for part in ("down", "up")}
    assert apply_lora(model, (nn.Conv2d, nn.Linear)) == []  # already wrapped layers are skipped


def test_merge_matches_unmerged_output_and_unmerge_is_exact() -> None:
    model, x = _model(), torch.randn(2, 3, 8, 8)
    apply_lora(model, (nn.Conv2d, nn.Linear), rank=3, alpha=1.5)
    _perturb_lora(model)
    originals = {n: p.detach().clone() for n, p in model.named_parameters() if ".base." in n}
    adapted = model(x)
    merge_lora(model)
    torch.testing.assert_close(model(x), adapted, rtol=1e-5, atol=1e-5)
    assert not torch.equal(model[0].base.weight, originals["0.base.weight"])
    unmerge_lora(model)
    for name, p in model.named_parameters():
        if name in originals:
            assert torch.equal(p, originals[name])
    assert torch.equal(model(x), adapted)


def test_lora_conv1d_and_scale() -> None:
    torch.manual_seed(1)
    base = nn.Conv1d(4, 6, 1)
    layer = LoRAConv(base, rank=2, alpha=1.0)
    _perturb_lora(layer)
    x = torch.randn(2, 4, 7)
    low_rank = layer.up.weight[:, :, 0] @ layer.down.weight[:, :, 0]
    expected = base(x) + 0.5 * torch.einsum("oc,bcn->bon", low_rank, x)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_lora_training_changes_only_lora_weights() -> None:
    model, x = _model(), torch.randn(2, 3, 8, 8)
    apply_lora(model, (nn.Linear,), rank=2)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert model[4].up.weight.abs().sum() > 0


def test_lora_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), rank=0)
    with pytest.raises(ValueError, match="ungrouped"):
        LoRAConv(nn.Conv2d(4, 4, 3, groups=2))
