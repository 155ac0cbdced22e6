"""Registry entry of the Direct Inversion package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@article{elarabawy2022direct,
  title         = {Direct Inversion: Optimization-Free Text-Driven Real Image Editing with
                   Diffusion Models},
  author        = {Elarabawy, Adham and Kamath, Harish and Denton, Samuel},
  journal       = {arXiv preprint arXiv:2211.07825},
  year          = {2022},
  eprint        = {2211.07825},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="direct_inversion",
    title="Direct Inversion: Optimization-Free Text-Driven Real Image Editing with Diffusion "
    "Models",
    arxiv="2211.07825",
    bibtex=BIBTEX,
    status="invariants reproduced on a tiny SD stack; demo on the zoo's emoji text-to-image model",
    demo=_demo,
    summary="DDIM-invert with an empty prompt storing every noise prediction, then guided DDIM "
    "on the target prompt with each guided eps blended toward the mirrored stored eps (weight "
    "lambda) over the first K steps.",
)
