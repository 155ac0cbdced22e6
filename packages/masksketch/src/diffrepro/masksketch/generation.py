"""Sketch-to-image with a MaskGIT tokenizer + transformer pair (spec §3.4 initialisation).

The sketch is encoded to tokens and the target class token is prepended: x (complete). The
start y⁽⁰⁾ masks N0 = min(⌈m_max N⌉, N - 1) random image positions of x, differently for each
of the K candidate rows, so ~5 % of the sketch tokens stay visible. Then the structure-guided
decoder runs with classifier-free guidance and the attention of the chosen layers.

Two baselines for the demo share the same models: plain class-conditional MaskGIT (no sketch)
and an "SDEdit-like" start from the same sketch tokens decoded by plain MaskGIT (no structure
term, revealed tokens fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffrepro.maskgit import decoding as maskgit_decoding
from diffrepro.maskgit.generation import check_labels, logits_fn
from diffrepro.masksketch.attention import attention_fn
from diffrepro.masksketch.budget import initial_masked
from diffrepro.masksketch.config import MaskSketchConfig
from diffrepro.masksketch.decoding import SketchDecodeResult, decode, initial_tokens
from diffrepro.masksketch.guidance import guided_logits, uncond_class


@dataclass
class SketchGenerated:
    """``images`` (B·K, 3, H, W) in [0, 1] and ``tokens`` (B·K, L): K candidates per sketch,
    row b·K + j is candidate j of sketch b. ``sketch_tokens`` (B·K, L): the complete x."""

    images: torch.Tensor
    tokens: torch.Tensor
    sketch_tokens: torch.Tensor
    labels: torch.Tensor
    candidates: int
    result: SketchDecodeResult | None = None


def check_sketches(model, tokenizer, sketches: torch.Tensor) -> None:
    size = tokenizer.config.downsample * model.config.latent_size
    if sketches.dim() != 4 or tuple(sketches.shape[1:]) != (3, size, size):
        raise ValueError(
            f"sketches must be (B, 3, {size}, {size}) for this model, got {tuple(sketches.shape)}"
        )
    if tokenizer.config.codebook_size != model.config.codebook_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.config.codebook_size} codes but the transformer "
            f"expects {model.config.codebook_size}"
        )


def sketch_sequence(model, tokenizer, sketches: torch.Tensor, labels: torch.Tensor):
    """x = [class token, sketch tokens] (B, L): complete."""
    check_sketches(model, tokenizer, sketches)
    check_labels(model, labels)
    mc = model.config
    codes = tokenizer.encode(sketches).flatten(1)
    cls = mc.class_id(labels.to(codes.device))[:, None].to(codes.dtype)
    return torch.cat([cls, codes], dim=1)


def sketch_start(model, tokenizer, sketches, labels, cfg: MaskSketchConfig, generator=None):
    """(x repeated K times per sketch (B·K, L), y⁽⁰⁾ (B·K, L) with N0 masked per row)."""
    mc = model.config
    x = sketch_sequence(model, tokenizer, sketches, labels).repeat_interleave(cfg.candidates, 0)
    n0 = initial_masked(mc.num_tokens, cfg.max_mask_rate)
    return x, initial_tokens(x, n0, mc.mask_id, generator)


def generated(tokenizer, tokens, x, labels, candidates: int, result=None) -> SketchGenerated:
    """Decode ``tokens`` (B·K, L) to images in [0, 1] and wrap them."""
    latent = math.isqrt(tokens.shape[1] - 1)
    images = tokenizer.decode(tokens[:, 1:].reshape(-1, latent, latent)).clamp(0, 1)
    reps = labels.repeat_interleave(candidates)
    return SketchGenerated(images, tokens, x, reps, candidates, result)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    sketches: torch.Tensor,
    labels: torch.Tensor,
    cfg: MaskSketchConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> SketchGenerated:
    """K = ``cfg.candidates`` MaskSketch samples for each sketch (B, 3, H, W) and label (B,)."""
    mc = model.config
    layers = cfg.layers_for(mc.depth)
    x, start = sketch_start(model, tokenizer, sketches, labels, cfg, generator)
    fn = model
    if cfg.guidance_scale > 0:
        uncond = uncond_class(mc.codebook_size, mc.num_classes, generator)
        fn = guided_logits(model, cfg.guidance_scale, uncond, cfg.guidance_rows)
    res = decode(
        fn,
        attention_fn(model, layers),
        x,
        start,
        mask_id=mc.mask_id,
        codebook_size=mc.codebook_size,
        config=cfg,
        generator=generator,
        progress=progress,
    )
    return generated(tokenizer, res.tokens, x, labels, cfg.candidates, res)


def _maskgit_decode(model, start, decode_cfg, generator):
    mc = model.config
    return maskgit_decoding.decode(
        logits_fn(model, decode_cfg, generator),
        start,
        mask_id=mc.mask_id,
        codebook_size=mc.codebook_size,
        config=decode_cfg,
        generator=generator,
    ).tokens


@torch.no_grad()
def sdedit_like(
    model,
    tokenizer,
    sketches: torch.Tensor,
    labels: torch.Tensor,
    cfg: MaskSketchConfig,
    decode_cfg: maskgit_decoding.DecodeConfig,
    generator: torch.Generator | None = None,
) -> SketchGenerated:
    """The baseline: MaskSketch's sketch-token start, then plain MaskGIT decoding (no
    structure term; the visible sketch tokens and every revealed token stay fixed)."""
    x, start = sketch_start(model, tokenizer, sketches, labels, cfg, generator)
    tokens = _maskgit_decode(model, start, decode_cfg, generator)
    return generated(tokenizer, tokens, x, labels, cfg.candidates)


@torch.no_grad()
def plain_maskgit(
    model,
    tokenizer,
    sketches: torch.Tensor,
    labels: torch.Tensor,
    cfg: MaskSketchConfig,
    decode_cfg: maskgit_decoding.DecodeConfig,
    generator: torch.Generator | None = None,
) -> SketchGenerated:
    """The baseline: class-conditional MaskGIT from an all-mask canvas (the sketch is unused
    except to report its structure distance)."""
    x = sketch_sequence(model, tokenizer, sketches, labels).repeat_interleave(cfg.candidates, 0)
    start = x.clone()
    start[:, 1:] = model.config.mask_id
    tokens = _maskgit_decode(model, start, decode_cfg, generator)
    return generated(tokenizer, tokens, x, labels, cfg.candidates)


def sketch_distance(model, gen: SketchGenerated, cfg: MaskSketchConfig) -> torch.Tensor:
    """The image-level structure distance (B·K,) of each candidate to its sketch."""
    from diffrepro.masksketch.structure import image_distance

    attend = attention_fn(model, cfg.layers_for(model.config.depth))
    return image_distance(attend(gen.sketch_tokens), attend(gen.tokens), cfg.structure_mode)
