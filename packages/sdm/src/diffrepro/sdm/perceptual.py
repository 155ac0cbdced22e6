"""The perceptual loss (spec §3.4): Σ_i ‖φ_i(x) - φ_i(x̂)‖² (mean over each feature map).

φ = the four stages of an ImageNet ResNet-50 written here with torchvision's module and key
names, so ``torchvision.models.resnet50(weights=...).state_dict()`` saved to a local file loads
directly (nothing is downloaded). Without a weights file a documented substitute is used: the
pixels plus a frozen, randomly initialised three-stage conv pyramid (fixed seed); it compares
colour and local structure at several scales, but not the paper's semantic features.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.checkpoints import load_state_dict, read_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return self.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision's resnet50 layout (conv1, bn1, layer1..4, fc); ``features`` returns stages."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for index, (width, blocks, stride) in enumerate(
            [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]
        ):
            layers = [Bottleneck(channels, width, stride)]
            channels = width * Bottleneck.expansion
            layers += [Bottleneck(channels, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = layer(h)
            stages.append(h)
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)[-1]), 1))


class RandomFeatures(nn.Module):
    """The substitute φ: the (normalised) pixels, then three frozen random conv stages
    (3×3, stride 2, ReLU, seed 0). The pixel level pins per-pixel colour, which random features
    alone leave loosely constrained."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        convs, previous = [], 3
        for width in widths:
            conv = nn.Conv2d(previous, width, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(
                    torch.randn(conv.weight.shape, generator=generator)
                    * (2 / (previous * 9)) ** 0.5
                )
                conv.bias.zero_()
            convs.append(conv)
            previous = width
        self.convs = nn.ModuleList(convs)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        stages = [x]
        for conv in self.convs:
            x = F.relu(conv(x))
            stages.append(x)
        return stages


class PerceptualLoss(nn.Module):
    """Frozen feature extractor; ``forward(fake, real)`` in [-1, 1] → scalar loss."""

    def __init__(self, resnet50_weights: str | Path | None = None) -> None:
        super().__init__()
        if resnet50_weights:
            self.extractor: nn.Module = ResNet50()
            load_state_dict(
                self.extractor, read_state_dict(resnet50_weights), source=str(resnet50_weights)
            )
        else:
            self.extractor = RandomFeatures()
        self.extractor.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.extractor.eval()  # batch-norm statistics stay frozen
        return self

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.extractor.features(((image + 1) / 2 - self.mean) / self.std)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        pairs = zip(self.features(fake), self.features(real))
        return sum(F.mse_loss(f, r) for f, r in pairs)
