"""DiffMotion: an autoregressive LSTM whose same-step output conditions a per-frame DDPM.

``h_t = LSTM(c_t, s_{t-1})`` reads the condition row of pose ``t`` (previous poses + speech
window); ``eps_theta(x_t^n, n, h_t)`` denoises the 45-d pose. The normalisation statistics of
poses and speech are buffers, so they are saved and loaded with the weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffrepro.core.losses import diffusion_loss, sample_timesteps
from diffrepro.core.schedules import Schedule, quadratic_betas

from .config import ModelConfig
from .denoiser import EpsilonTheta

LSTMState = tuple[Tensor, Tensor]


class DiffMotion(nn.Module):
    """The temporal encoder (``rnn``) and the denoiser (``denoise_fn``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.rnn = nn.LSTM(
            cfg.condition_dim, cfg.lstm_hidden, cfg.lstm_layers, batch_first=True,
            dropout=cfg.lstm_dropout if cfg.lstm_layers > 1 else 0.0,
        )  # fmt: skip
        self.denoise_fn = EpsilonTheta(cfg)
        self.schedule = Schedule.from_betas(
            quadratic_betas(cfg.diffusion_steps, cfg.beta_start, cfg.beta_end)
        )
        self.register_buffer("pose_mean", torch.zeros(cfg.pose_dim))
        self.register_buffer("pose_std", torch.ones(cfg.pose_dim))
        self.register_buffer("speech_mean", torch.zeros(cfg.audio_dim))
        self.register_buffer("speech_std", torch.ones(cfg.audio_dim))

    def set_statistics(self, pose: tuple[Tensor, Tensor], speech: tuple[Tensor, Tensor]) -> None:
        """Store the (mean, std) of poses and speech features used for standardisation."""
        for name, value in zip(
            ("pose_mean", "pose_std", "speech_mean", "speech_std"), (*pose, *speech)
        ):
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))

    def encode(self, cond: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """LSTM over condition rows ``(B, T, C)``: outputs ``(B, T, H)`` and the carried state."""
        return self.rnn(cond, state)

    def denoise(self, x: Tensor, step: Tensor, h: Tensor) -> Tensor:
        """``eps_theta`` of poses ``x (N, 1, D)`` at steps ``(N,)``, LSTM outputs ``h (N, H)``."""
        return self.denoise_fn(x, step, h)

    def loss(
        self, cond: Tensor, target: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Epsilon-prediction L2 loss, one random step per (clip, frame), mean over everything."""
        h, _ = self.encode(cond)
        x0 = target.reshape(-1, 1, target.shape[-1])
        h = h.reshape(-1, h.shape[-1])
        t = sample_timesteps(x0.shape[0], len(self.schedule), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        terms = diffusion_loss(
            lambda x, s: self.denoise(x, s, h), x0, t, self.schedule, noise=noise
        )
        return terms["loss"].mean()

    def forward(self, cond: Tensor, target: Tensor) -> Tensor:
        """The training :meth:`loss`; calling the module lets DDP synchronise its gradients."""
        return self.loss(cond, target)
