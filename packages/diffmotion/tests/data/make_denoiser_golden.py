"""Regenerate ``denoiser_golden.json``: the official-size TimeGrad denoiser's output on a fixed
input, computed by the float64 numpy rewrite in ``test_method_pins.py`` (not by our module).

The weights are torch's default initialisation under ``torch.manual_seed(0)`` with the output
convolution's zero init replaced by ``normal(std=0.5)`` under seed 1; the input by seed 2
(:func:`golden_case`). From the repository root::

    uv run python packages/diffmotion/tests/data/make_denoiser_golden.py
"""

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

STEPS = (0, 49, 99)


def golden_case():
    """(network in float64, x (3, 1, 45), steps (3,), cond (3, 512), config): official sizes."""
    from diffrepro.diffmotion.config import ModelConfig
    from diffrepro.diffmotion.denoiser import EpsilonTheta

    cfg = ModelConfig()
    torch.manual_seed(0)
    net = EpsilonTheta(cfg)
    torch.manual_seed(1)
    torch.nn.init.normal_(net.output_projection.weight, std=0.5)
    torch.manual_seed(2)
    x = torch.randn(len(STEPS), 1, cfg.pose_dim)
    cond = torch.randn(len(STEPS), cfg.lstm_hidden)
    return net.double(), x.double(), torch.tensor(STEPS), cond.double(), cfg


def main() -> None:
    from test_method_pins import _reference_eps

    net, x, step, cond, cfg = golden_case()
    out = _reference_eps(net, x.numpy(), step, cond.numpy(), cfg)
    path = HERE / "denoiser_golden.json"
    data = {"steps": list(STEPS), "output": [[round(float(v), 10) for v in row[0]] for row in out]}
    path.write_text(json.dumps(data) + "\n")
    print(f"wrote {path}: {out.shape}")


if __name__ == "__main__":
    main()
