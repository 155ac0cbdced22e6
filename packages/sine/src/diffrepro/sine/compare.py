"""SINE in ``diffrepro compare editing`` (the ``diffrepro.editing`` entry point).

Single-image fine-tuning (UNet + text encoder, no patches) of a copy of the shared model (``sd``
is never changed) with the ``demo`` preset's learning rate, for :data:`FINETUNE_STEPS` steps
(the demo: 150) so that the default comparison stays within its time budget. The identifier
caption is the source prompt with ``sks`` before its last word, the class word
(``"an emoji of a dog face"`` -> ``"an emoji of a dog sks face"``; the paper's
``"photo of a sks dog"`` names the class the same way). The edit is model-based guidance
(the pretrained ``sd`` under the target prompt, the fine-tuned copy under its caption, v = 0.6,
K = 500, guidance 4) over ``steps`` DDIM steps from the seed's noise.

The reconstruction is what the paper shows its fine-tuned model doing: the fine-tuned copy
alone, under its identifier caption (plain classifier-free guidance, same seed and steps).
``unet_evals`` counts the fine-tuning's UNet forwards (one per step, batch 1; backward passes
not counted) and the edit's: 2 pretrained rows per step plus 1 fine-tuned row per step inside
the window. The reconstruction is not counted.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path

from torch import Tensor

from diffrepro.core.compare import EditMethod, EditResult, count_unet_evals
from diffrepro.core.seeded_sampling import decode_clamped

from .config import PRESETS, SineConfig
from .editing import FineTuned, edit, make_guide
from .finetune import finetune
from .guidance import Window

FINETUNE_STEPS = 60  # at compare time (demo: 150)


def compare_config(steps: int, size: int) -> SineConfig:
    """The demo preset with the compare-time budget, ``steps`` DDIM steps, ``size`` pixels."""
    return dataclasses.replace(
        PRESETS["demo"], steps=FINETUNE_STEPS, num_steps=steps, resolution=size, num_samples=1,
        log_every=FINETUNE_STEPS,
    )  # fmt: skip


def identifier_caption(source: str) -> tuple[str, str]:
    """``(caption template, class word)``: ``sks`` goes before the source prompt's last word."""
    words = source.replace("{", "{{").replace("}", "}}").split()
    if not words:
        raise ValueError("SINE needs a non-empty source prompt to name the class")
    return " ".join([*words[:-1], "sks", "{}"]), source.split()[-1]


def sine_edit(sd, image: Tensor, source: str, target: str, *, seed: int, steps: int):
    """One SINE edit of ``image`` (1, 3, H, W) towards ``target``; fine-tunes a copy of ``sd``."""
    height, width = image.shape[-2:]
    if height != width:
        raise ValueError(f"SINE fine-tunes on a square image, got {height}x{width}")
    template, word = identifier_caption(source)
    cfg = dataclasses.replace(compare_config(steps, int(height)), caption=template)
    tuned = FineTuned(copy.deepcopy(sd), cfg.caption.format(word))
    window = Window(cfg.k_min, cfg.k_max, cfg.window_rule)

    def sample(model, prompt: str, guides) -> Tensor:
        return edit(
            model, prompt, guides, seeds=[seed], height=height, width=width,
            guidance_scale=cfg.guidance_scale, num_steps=steps, ddim_eta=cfg.ddim_eta,
        )  # fmt: skip

    with (
        tempfile.TemporaryDirectory(prefix="sine-compare-") as tmp,
        count_unet_evals(sd) as base,
        count_unet_evals(tuned.sd) as own,
    ):
        finetune(tuned.sd, image[0], word, cfg, Path(tmp), seed=seed)
        edited = sample(sd, target, [make_guide(tuned, cfg.v, window)])
    recon = sample(tuned.sd, tuned.caption, [])
    return EditResult(decode_clamped(sd, edited), decode_clamped(sd, recon), base[0] + own[0])


def editing_methods() -> list[EditMethod]:
    return [EditMethod("sine", "SINE", sine_edit, package="diffrepro-sine")]
