"""Positional Group Normalization (PosGN), VIDM's replacement for the timestep embedding.

For a feature map x (B, C, H, W), diffusion step t and frame index n, with every coordinate
normalised to [-1, 1] by ``linspace`` (both ends included)::

    t~ = -1 + 2 t / (T - 1),  n~ = -1 + 2 n / (N_v - 1),  h~_i = -1 + 2 i / (H - 1),  w~_j likewise
    e_ij = W2 SiLU(W1 sin(W0 [t~, n~, h~_i, w~_j] + b0) + b1) + b2
           (W0: 4 -> C, W1: C -> 2C, W2: 2C -> 2C)
    (gamma_ij, beta_ij) = split(e_ij)
    PosGN(x)_cij = GN(x)_cij (1 + gamma_cij) + beta_cij

The coordinate grids are computed for each call's actual batch and resolution (the official code
cached them as buffers with the first call's batch size baked in). W0 is applied as a per-sample
part (t~, n~) plus a per-pixel part (h~, w~), broadcast-added before the sine: the same maths,
and samples sharing (t, n) (all of them, during sampling) share one modulation computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffrepro.core.nn import normalization


def normalised_index(index: Tensor, count: int) -> Tensor:
    """``-1 + 2 index / (count - 1)``: 0 -> -1 and count - 1 -> +1 (float32)."""
    if count < 2:
        raise ValueError(f"a normalised coordinate needs count >= 2, got {count}")
    return -1.0 + 2.0 * index.to(torch.float32) / (count - 1)


def step_frame_coords(
    t: Tensor, n: Tensor, *, num_timesteps: int, num_frames: int, use_frame: bool = True
) -> Tensor:
    """The per-sample PosGN coordinates (B, 2) = (t~, n~); ``use_frame=False`` pins n~ to 0."""
    t_coord = normalised_index(t.reshape(-1), num_timesteps)
    n_coord = (
        normalised_index(n.reshape(-1), num_frames) if use_frame else torch.zeros_like(t_coord)
    )
    if n_coord.shape != t_coord.shape:
        raise ValueError(
            f"t and n need one value per sample, got {tuple(t.shape)} and {tuple(n.shape)}"
        )
    return torch.stack([t_coord, n_coord], dim=1)


def spatial_coords(height: int, width: int, device: torch.device) -> Tensor:
    """(H * W, 2) grid of (h~, w~) in [-1, 1] (a single row/column sits at -1)."""
    hs = torch.linspace(-1.0, 1.0, height, device=device)
    ws = torch.linspace(-1.0, 1.0, width, device=device)
    return torch.stack(torch.meshgrid(hs, ws, indexing="ij"), dim=-1).reshape(-1, 2)


class PosGN(nn.Module):
    """GroupNorm whose per-pixel scale and shift come from a sine MLP of (t~, n~, h~, w~)."""

    def __init__(self, channels: int, groups: int = 32) -> None:
        super().__init__()
        self.norm = normalization(channels, groups)
        self.coord_in = nn.Linear(4, channels)
        self.coord_hidden = nn.Linear(channels, 2 * channels)
        self.coord_out = nn.Linear(2 * channels, 2 * channels)

    def modulation(self, coords: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
        """(gamma, beta), each (B, C, H, W), for per-sample coordinates ``coords`` (B, 2)."""
        unique, inverse = torch.unique(coords, dim=0, return_inverse=True)
        weight_tn, weight_hw = self.coord_in.weight[:, :2], self.coord_in.weight[:, 2:]
        per_sample = F.linear(unique, weight_tn, self.coord_in.bias)  # (U, C)
        grid = spatial_coords(height, width, coords.device).to(weight_hw.dtype)
        per_pixel = grid @ weight_hw.T  # (HW, C)
        hidden = torch.sin(per_sample[:, None, :] + per_pixel[None])  # (U, HW, C)
        out = self.coord_out(F.silu(self.coord_hidden(hidden)))  # (U, HW, 2C)
        out = out[inverse].transpose(1, 2).reshape(coords.shape[0], -1, height, width)
        gamma, beta = out.chunk(2, dim=1)
        return gamma, beta

    def forward(self, x: Tensor, coords: Tensor) -> Tensor:
        if coords.shape != (x.shape[0], 2):
            raise ValueError(
                f"PosGN expects coords of shape ({x.shape[0]}, 2), got {tuple(coords.shape)}"
            )
        gamma, beta = self.modulation(coords.to(x.dtype), *x.shape[-2:])
        return self.norm(x) * (1 + gamma) + beta
