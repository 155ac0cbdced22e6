"""Registry entry of the Textual Inversion package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@misc{gal2022textual,
  doi           = {10.48550/ARXIV.2208.01618},
  url           = {https://arxiv.org/abs/2208.01618},
  author        = {Gal, Rinon and Alaluf, Yuval and Atzmon, Yuval and Patashnik, Or and
                   Bermano, Amit H. and Chechik, Gal and Cohen-Or, Daniel},
  title         = {An Image is Worth One Word: Personalizing Text-to-Image Generation
                   using Textual Inversion},
  publisher     = {arXiv},
  year          = {2022},
  primaryClass  = {cs.CV}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="textual_inversion",
    title="An Image is Worth One Word: Personalizing Text-to-Image Generation using Textual "
    "Inversion",
    arxiv="2208.01618",
    bibtex=BIBTEX,
    status="implemented and tested; the CPU demo on the zoo's emoji model is written but was "
    "not yet run (the zoo models were not built when it was committed)",
    demo=_demo,
    summary="Learn a new pseudo-word's token embedding (the only trainable tensor) with the "
    "frozen LDM denoising loss on 3-5 images, then use it in prompts.",
)
