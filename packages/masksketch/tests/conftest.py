import sys
from pathlib import Path

import pytest
import torch

from diffrepro.maskgit.config import TINY
from diffrepro.maskgit.transformer import MaskGitTransformer
from diffrepro.maskgit.vqgan import VQGAN


@pytest.fixture
def tiny_models():
    """An untrained tiny MaskGIT pair (2 layers, 2 heads, 4×4 tokens, 16 codes, 3 classes, 16 px)
    with larger weights than the official init, so attention rows are far from uniform."""
    torch.manual_seed(0)
    model, tok = MaskGitTransformer(TINY.transformer).eval(), VQGAN(TINY.tokenizer).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.mul_(40)
    return model, tok


sys.path.insert(0, str(Path(__file__).parent))  # masksketch_helpers (test helpers)
