import sys
from pathlib import Path

import pytest
import torch


class StubModel:
    """Random but input-dependent float64 logits over a vocabulary of V ids; counts calls."""

    def __init__(self, vocab: int, seed: int = 0, scale: float = 3.0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.randn(vocab, vocab, generator=gen, dtype=torch.float64) * scale
        self.pos = torch.randn(4096, vocab, generator=gen, dtype=torch.float64)
        self.calls = 0

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        context = self.table[tokens].mean(dim=1, keepdim=True)
        return context + self.pos[: tokens.shape[1]] + 0.1 * self.table[tokens]


@pytest.fixture
def stub():
    return StubModel


sys.path.insert(0, str(Path(__file__).parent))  # flax_reference (a test helper)
