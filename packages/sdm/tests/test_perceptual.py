import pytest
import torch

from diffrepro.sdm.perceptual import PerceptualLoss, ResNet50


def test_resnet50_matches_torchvision_layout():
    model = ResNet50()
    state = model.state_dict()
    assert len(state) == 320
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's resnet50
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight",
                "layer4.2.bn3.num_batches_tracked", "fc.bias"):  # fmt: skip
        assert key in state
    assert [f.shape[1] for f in model.eval().features(torch.randn(1, 3, 64, 64))] == [
        256,
        512,
        1024,
        2048,
    ]


def test_perceptual_loss_loads_a_local_weights_file(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(ResNet50().state_dict(), path)
    loss = PerceptualLoss(path)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    assert float(loss(image, image)) == 0.0
    assert float(loss(image, -image)) > 0
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="missing keys"):
        PerceptualLoss(bad)


def test_substitute_features_are_frozen_and_deterministic():
    a, b = PerceptualLoss(), PerceptualLoss()
    assert all(not p.requires_grad for p in a.parameters())
    fake = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    value = a(fake, real)
    assert torch.equal(value, b(fake, real))
    value.backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
