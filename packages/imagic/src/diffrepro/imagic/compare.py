"""Imagic in ``diffrepro compare editing`` (the ``diffrepro.editing`` entry point).

Stages A and B run on a copy of the shared model (``sd`` is never changed) with the ``demo``
preset's learning rates and guidance, but a shorter compare-time budget (:data:`EMBED_STEPS`
and :data:`FINETUNE_STEPS` instead of the demo's 150 + 150) so that the default comparison stays
within its time budget; stage C samples ``steps`` DDIM steps at ``eta`` = 0.7 from the seed's
noise. Imagic fits the image under the TARGET text only: the source prompt is not used.

The reconstruction is stage C at ``eta = 0`` (the optimised embedding ``e_opt`` alone, through
the fine-tuned UNet, same seed), the paper's "reproduces the input" end of the interpolation.
``unet_evals`` counts every UNet forward of stages A and B (one per training step, batch 1;
backward passes are not counted) and of the edit's guided sampling (2 per step); the
reconstruction's sampling is not counted.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path

from torch import Tensor

from diffrepro.core.compare import EditMethod, EditResult, count_unet_evals
from diffrepro.core.seeded_sampling import decode_clamped

from .config import PRESETS, ImagicConfig
from .pipeline import fit
from .sampling import sample_embedding
from .stages import interpolate

EMBED_STEPS = 40  # stage A at compare time (demo: 150)
FINETUNE_STEPS = 40  # stage B at compare time (demo: 150)


def compare_config(steps: int) -> ImagicConfig:
    """The demo preset with the compare-time budget and ``steps`` DDIM steps."""
    return dataclasses.replace(
        PRESETS["demo"], embed_steps=EMBED_STEPS, finetune_steps=FINETUNE_STEPS, num_steps=steps,
        num_samples=1, log_every=max(EMBED_STEPS, FINETUNE_STEPS),
    )  # fmt: skip


def imagic_edit(sd, image: Tensor, source: str, target: str, *, seed: int, steps: int):
    """One Imagic edit of ``image`` (1, 3, H, W) towards ``target`` on a copy of ``sd``."""
    del source  # Imagic conditions on the target text only
    cfg = compare_config(steps)
    work = copy.deepcopy(sd)
    height, width = image.shape[-2:]

    def stage_c(e_tgt: Tensor, e_opt: Tensor, eta: float) -> Tensor:
        e = interpolate(e_tgt, e_opt, eta)
        return sample_embedding(
            work, e, seeds=[seed], height=height, width=width,
            guidance_scale=cfg.guidance_scale, num_steps=steps, ddim_eta=cfg.ddim_eta,
        )  # fmt: skip

    with (
        tempfile.TemporaryDirectory(prefix="imagic-compare-") as tmp,
        count_unet_evals(work) as evals,
    ):
        fitted = fit(work, image[0], target, cfg, Path(tmp), seed)
        edited = stage_c(fitted.e_tgt, fitted.e_opt, cfg.eta)
    recon = stage_c(fitted.e_tgt, fitted.e_opt, 0.0)
    return EditResult(decode_clamped(work, edited), decode_clamped(work, recon), evals[0])


def editing_methods() -> list[EditMethod]:
    return [EditMethod("imagic", "Imagic", imagic_edit, package="diffrepro-imagic")]
