"""Registry entry of the ADIR package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """@article{abuhussein2022adir,
  title         = {{ADIR}: Adaptive Diffusion for Image Reconstruction},
  author        = {Abu-Hussein, Shady and Tirer, Tom and Giryes, Raja},
  journal       = {arXiv preprint arXiv:2212.03221},
  year          = {2022},
  eprint        = {2212.03221},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="adir",
    title="ADIR: Adaptive Diffusion for Image Reconstruction",
    arxiv="2212.03221",
    bibtex=BIBTEX,
    status="pipeline reproduced on the zoo's emoji-ddpm (32 px); the adaptation gain is not "
    "reproduced at this scale (retrieval-specific gain within ±0.1 dB, see the README)",
    demo=_demo,
    summary="Measurement-guided DDPM sampling (Taylor step with y_t) plus LoRA adaptation of the "
    "diffusion model to K nearest neighbours of the degraded image.",
)
