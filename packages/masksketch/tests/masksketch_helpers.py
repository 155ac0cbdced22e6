"""Helpers shared by the MaskSketch tests."""

import torch


def random_log_attention(shape, seed=0, scale=3.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(shape, generator=gen, dtype=dtype) * scale, dim=-1)
