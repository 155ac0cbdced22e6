"""The motion generator's network (the official ``ComplexUModel``).

It predicts [eps, v] for the noisy frame x^n_t given

- the first frame x^1, through a second, encoder-only copy of the UNet's down path whose features
  are fused into every down block k:
      r_k = E_k(r_{k-1}),  u_k = r_k + 0.2 U_k(u_{k-1}),  skip_k = u_k;
- the motion so far, a flow (B, 2, H, W) from the first to the previous frame, concatenated to
  x^n_t as two extra input channels (the previous frame's pixels are not an input);
- the diffusion step t and the frame index n, through PosGN in every ResBlock (no timestep
  embedding exists in this network).

``posgn=False`` is the PosGN-off ablation (not in the released code): ordinary ADM ResBlocks
(AdaGN scale-shift) conditioned on a sinusoidal embedding of t plus one of the frame index,
``emb = MLP_t(sin(t)) + MLP_n(sin(n (T - 1) / (N_v - 1)))`` (n rescaled onto t's range, the same
normalisation as PosGN's n~); everything else (encoder, fusion, flow) is unchanged.

Every ResBlock's output conv and the final conv start at zero, so at initialisation the network
outputs exactly 0. There is no dropout layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffrepro.core.models.unet import UNetConfig, UNetModel
from diffrepro.core.nn import ResBlock
from diffrepro.core.nn.embeddings import timestep_embedding
from diffrepro.vidm.posgn import PosGN, step_frame_coords


@dataclass(frozen=True)
class MotionNetConfig:
    """The motion UNet: core UNet flags plus VIDM's own settings.

    ``num_frames`` (N_v) is the frame count the frame coordinate n~ = -1 + 2n/(N_v - 1) is
    normalised by. It is saved with every checkpoint and used by training and generation alike
    (the official code trained with 128 and generated with 64: fixed here).
    """

    unet: UNetConfig = field(
        default_factory=lambda: UNetConfig(
            image_size=128,
            model_channels=128,
            channel_mult=(1, 1, 2, 2, 4, 4),
            num_res_blocks=2,
            attention_resolutions=(8,),
            num_head_channels=64,
            resblock_updown=True,
            learn_sigma=True,
        )
    )
    num_frames: int = 128
    num_timesteps: int = 1000
    fusion_scale: float = 0.2
    use_frame_coordinate: bool = True
    posgn: bool = True  # False: the PosGN-off ablation (AdaGN with sinusoidal t and n embeddings)
    flow_scale: float = 0.0  # 0: flow in pixels times 2 / image_size (grid units)

    def __post_init__(self) -> None:
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be at least 2, got {self.num_frames}")


class PosGNResBlock(ResBlock):
    """ADM ResBlock whose output norm is PosGN; the "embedding" it receives is the (B, 2)
    (t~, n~) coordinate batch. No dropout layer, no timestep-embedding projection."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float = 0.0,
        out_channels: int | None = None,
        **kw,
    ) -> None:
        super().__init__(channels, 1, 0.0, out_channels, **kw)
        groups = self.in_layers[0].num_groups
        self.emb_layers = PosGN(self.out_channels, groups)
        self.out_layers[0] = nn.Identity()  # PosGN holds this norm
        self.out_layers[2] = nn.Identity()  # no dropout

    def conditioned_norm_silu(self, h: Tensor, emb: Tensor) -> Tensor:
        return F.silu(self.emb_layers(h, emb))


class PosGNUNet(UNetModel):
    """The core ADM UNet with PosGN ResBlocks and no timestep embedding."""

    resblock_cls = PosGNResBlock

    def __init__(self, config: UNetConfig) -> None:
        super().__init__(config)
        del self.time_embed


class FirstFrameEncoder(nn.Module):
    """The down path of a PosGN UNet (``input_blocks``), run on the first frame."""

    def __init__(self, config: UNetConfig, unet_cls: type[UNetModel] = PosGNUNet) -> None:
        super().__init__()
        self.input_blocks = unet_cls(dataclasses.replace(config, cond_channels=0)).input_blocks


class MotionUNet(nn.Module):
    def __init__(self, config: MotionNetConfig) -> None:
        super().__init__()
        unet_cfg = dataclasses.replace(config.unet, cond_channels=2)
        if not unet_cfg.learn_sigma:
            raise ValueError("VIDM's motion UNet learns its variance: set unet.learn_sigma=true")
        self.config = config
        unet_cls = PosGNUNet if config.posgn else UNetModel
        self.unet = unet_cls(unet_cfg)
        self.encoder = FirstFrameEncoder(unet_cfg, unet_cls)
        if not config.posgn:
            width = 4 * unet_cfg.model_channels
            self.frame_embed = nn.Sequential(
                nn.Linear(unet_cfg.model_channels, width), nn.SiLU(), nn.Linear(width, width)
            )

    def conditioning(self, t: Tensor, n: Tensor) -> Tensor:
        """What every ResBlock receives: the (B, 2) PosGN coordinates, or, for ``posgn=False``,
        the (B, 4C) AdaGN embedding of t and n."""
        if self.config.posgn:
            return self.coords(t, n)
        cfg = self.config
        emb = self.unet.embed(t)
        if cfg.use_frame_coordinate:
            frame = n.to(torch.float32) * (cfg.num_timesteps - 1) / (cfg.num_frames - 1)
            sinusoid = timestep_embedding(frame, cfg.unet.model_channels).to(emb.dtype)
            emb = emb + self.frame_embed(sinusoid)
        return emb

    def coords(self, t: Tensor, n: Tensor) -> Tensor:
        cfg = self.config
        return step_frame_coords(
            t,
            n,
            num_timesteps=cfg.num_timesteps,
            num_frames=cfg.num_frames,
            use_frame=cfg.use_frame_coordinate,
        )

    def forward(self, x: Tensor, t: Tensor, n: Tensor, first: Tensor, flow: Tensor) -> Tensor:
        """[eps, v] (B, 6, H, W) for noisy frames ``x`` at steps ``t`` and frame indices ``n``."""
        if first.shape != x.shape or flow.shape != (x.shape[0], 2, *x.shape[-2:]):
            raise ValueError(
                f"motion UNet: first frame {tuple(first.shape)} and flow {tuple(flow.shape)} "
                f"do not match the noisy frame {tuple(x.shape)}"
            )
        self.unet.check_input(x, flow)
        device = x.device
        coords = self.conditioning(
            torch.as_tensor(t, device=device).expand(x.shape[0]),
            torch.as_tensor(n, device=device).expand(x.shape[0]),
        )
        coords = coords.to(x.dtype)
        h = torch.cat([x, flow * self._flow_scale(x)], dim=1)
        h, skips = self.fused_encode(h, first, coords)
        h = self.unet.middle_block(h, coords)
        h = self.unet.decode(h, skips, coords)
        return self.unet.output(h)

    def fused_encode(self, h: Tensor, first: Tensor, coords: Tensor) -> tuple[Tensor, list[Tensor]]:
        """u_k = E_k(r_{k-1}) + fusion_scale * U_k(u_{k-1}); returns the last u and all skips."""
        r, skips = first, []
        for encoder_block, block in zip(self.encoder.input_blocks, self.unet.input_blocks):
            r = encoder_block(r, coords)
            h = r + self.config.fusion_scale * block(h, coords)
            skips.append(h)
        return h, skips

    def _flow_scale(self, x: Tensor) -> float:
        return self.config.flow_scale or 2.0 / max(x.shape[-2:])
