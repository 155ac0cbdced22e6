"""Generation and editing with a tokenizer + transformer pair: class-conditional sampling,
inpainting, outpainting and class-conditional editing (official ``inference.py`` recipe).

All editing verbs share one mechanism: encode the image, put the mask id on the token region to
synthesise and the (target) class at position 0, decode (known tokens get +inf confidence, so
they are never changed), then decode the tokens to pixels. Editing composites in pixel space:
x = m x̂ + (1 - m) x_in with m the token mask upsampled and Gaussian-blurred (PIL).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from diffrepro.maskgit.decoding import (
    DecodeConfig,
    DecodeResult,
    decode,
    guided,
    unconditional_token,
)
from diffrepro.maskgit.transformer import MaskGitTransformer
from diffrepro.maskgit.vqgan import VQGAN


@dataclass
class Generated:
    images: torch.Tensor  # (B, 3, H, W) in [0, 1]
    tokens: torch.Tensor  # (B, 1 + N) with the class token first
    result: DecodeResult


def logits_fn(model: MaskGitTransformer, cfg: DecodeConfig, generator=None):
    """The model's logits callable, wrapped with classifier-free guidance when asked."""
    if cfg.guidance_scale == 0:
        return model
    mc = model.config
    token = unconditional_token(
        cfg.guidance_uncond,
        codebook_size=mc.codebook_size,
        num_classes=mc.num_classes,
        mask_id=mc.mask_id,
        generator=generator,
    )
    return guided(model, cfg.guidance_scale, token)


def check_labels(model: MaskGitTransformer, labels: torch.Tensor) -> None:
    c = model.config.num_classes
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise ValueError(f"class labels must lie in [0, {c}), got {labels.tolist()}")


def fill(
    model: MaskGitTransformer,
    codes: torch.Tensor,
    unknown: torch.Tensor,
    labels: torch.Tensor,
    cfg: DecodeConfig,
    generator=None,
) -> DecodeResult:
    """Decode the ``unknown`` (B, h, w) positions of ``codes`` (B, h, w) for ``labels``."""
    check_labels(model, labels)
    mc = model.config
    if codes.shape[1:] != (mc.latent_size, mc.latent_size) or unknown.shape != codes.shape:
        raise ValueError(
            f"token grids must be {mc.latent_size}×{mc.latent_size}, got {tuple(codes.shape[1:])}"
        )
    flat = torch.where(unknown, torch.full_like(codes, mc.mask_id), codes).flatten(1)
    cls = mc.class_id(labels.to(codes.device))[:, None].to(codes.dtype)
    tokens = torch.cat([cls, flat], dim=1)
    return decode(
        logits_fn(model, cfg, generator),
        tokens,
        mask_id=mc.mask_id,
        codebook_size=mc.codebook_size,
        config=cfg,
        generator=generator,
    )


def to_images(tokenizer: VQGAN, tokens: torch.Tensor, latent: int) -> torch.Tensor:
    return tokenizer.decode(tokens[:, 1:].reshape(-1, latent, latent))


@torch.no_grad()
def sample(
    model: MaskGitTransformer,
    tokenizer: VQGAN,
    labels: torch.Tensor,
    cfg: DecodeConfig,
    generator=None,
) -> Generated:
    """Class-conditional generation from an all-mask canvas."""
    n = model.config.latent_size
    device = model.pos_emb.device
    codes = torch.zeros(len(labels), n, n, dtype=torch.long, device=device)
    res = fill(model, codes, torch.ones_like(codes, dtype=torch.bool), labels, cfg, generator)
    return Generated(to_images(tokenizer, res.tokens, n), res.tokens, res)


@torch.no_grad()
def inpaint(
    model: MaskGitTransformer,
    tokenizer: VQGAN,
    images: torch.Tensor,
    unknown: torch.Tensor,
    labels: torch.Tensor,
    cfg: DecodeConfig,
    generator=None,
) -> Generated:
    """Re-synthesise the ``unknown`` token region (B, h, w) of ``images``; the other tokens are
    kept bit-identical (outpainting is the same call with the outside region unknown)."""
    codes = tokenizer.encode(images)
    if not bool(unknown.any()):
        raise ValueError("the mask selects no token to synthesise")
    res = fill(model, codes, unknown, labels, cfg, generator)
    return Generated(to_images(tokenizer, res.tokens, codes.shape[1]), res.tokens, res)


def outpaint_mask(latent: int, side: str, keep: int) -> torch.Tensor:
    """Token mask (h, w), True = synthesise: everything beyond ``keep`` rows/columns from
    ``side``'s opposite edge (e.g. side="right", keep=latent//2 extends the left half)."""
    if not 0 < keep < latent:
        raise ValueError(f"outpainting must keep between 1 and {latent - 1} token rows/columns")
    mask = torch.zeros(latent, latent, dtype=torch.bool)
    if side == "right":
        mask[:, keep:] = True
    elif side == "left":
        mask[:, : latent - keep] = True
    elif side == "bottom":
        mask[keep:] = True
    elif side == "top":
        mask[: latent - keep] = True
    else:
        raise ValueError(f"side must be left, right, top or bottom, got {side!r}")
    return mask


def box_mask(latent: int, factor: int, box: tuple[int, int, int, int]) -> torch.Tensor:
    """The official editing token box: pixel box (top, left, height, width) → token rows
    ⌊top/f⌋-1 .. ⌊top/f⌋+⌊height/f⌋+1 (and likewise columns), clipped to the grid."""
    top, left, height, width = box
    if min(box) < 0 or height == 0 or width == 0:
        raise ValueError(f"the box (top, left, height, width) must be non-negative, got {box}")
    r0, c0 = top // factor - 1, left // factor - 1
    r1, c1 = top // factor + height // factor + 1, left // factor + width // factor + 1
    mask = torch.zeros(latent, latent, dtype=torch.bool)
    mask[max(r0, 0) : max(min(r1, latent), 0), max(c0, 0) : max(min(c1, latent), 0)] = True
    if not bool(mask.any()):
        raise ValueError(f"the box {box} lies outside the {latent * factor}-pixel image")
    return mask


def blurred_pixel_mask(unknown: torch.Tensor, size: int, radius: int | None = None) -> torch.Tensor:
    """Token mask (h, w) → pixel mask (1, 1, size, size) in [0, 1], nearest-upsampled and
    Gaussian-blurred with PIL (official radius size // 16 - 1)."""
    radius = max(size // 16 - 1, 0) if radius is None else radius
    up = F.interpolate(unknown[None, None].float(), size=(size, size), mode="nearest")[0, 0]
    img = Image.fromarray((up.cpu().numpy() * 255).astype(np.uint8))
    if radius > 0:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None, None]


@torch.no_grad()
def edit(
    model: MaskGitTransformer,
    tokenizer: VQGAN,
    images: torch.Tensor,
    unknown: torch.Tensor,
    target: torch.Tensor,
    cfg: DecodeConfig,
    generator=None,
    composite: bool = True,
) -> Generated:
    """Class-conditional editing: the region is re-generated for the ``target`` class (official
    demo: 12 steps starting at step 2), then composited with the blurred mask."""
    out = inpaint(model, tokenizer, images, unknown, target, cfg, generator)
    if composite:
        size = images.shape[-1]
        m = torch.cat([blurred_pixel_mask(u, size) for u in unknown]).to(images.device)
        out = replace(out, images=m * out.images + (1 - m) * images)
    return out


EDIT_DECODE = DecodeConfig(num_iter=12, start_iter=2)
