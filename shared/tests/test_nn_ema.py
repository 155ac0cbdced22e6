import pytest
import torch
from torch import nn

from diffrepro.core.nn import EMA


def test_ema_update_formula_and_buffers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9)
    start = {k: v.double().clone() for k, v in model.state_dict().items()}
    expected = dict(start)
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(4, 3))  # changes the BatchNorm running stats (buffers)
        ema.update(model)
        for name, p in model.named_parameters():
            expected[name] = 0.9 * expected[name] + 0.1 * p.detach().double()
    for name, _ in model.named_parameters():
        torch.testing.assert_close(ema.shadow[name].double(), expected[name], rtol=1e-6, atol=1e-6)
    assert torch.equal(ema.shadow["1.running_mean"], model[1].running_mean)
    assert int(ema.shadow["1.num_batches_tracked"]) == 3


def test_ema_copy_to_and_state_roundtrip() -> None:
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model)
    other = EMA(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(ema.state_dict())
    target = nn.Linear(3, 2)
    other.copy_to(target)
    torch.testing.assert_close(target.weight, model.weight - 1.0)
    with pytest.raises(ValueError, match="does not match"):
        other.load_state_dict({"weight": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.5)
