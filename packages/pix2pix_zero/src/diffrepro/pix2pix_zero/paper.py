"""Registry entry of the pix2pix-zero package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """@inproceedings{parmar2023zero,
  title     = {Zero-shot Image-to-Image Translation},
  author    = {Parmar, Gaurav and Singh, Krishna Kumar and Zhang, Richard and Li, Yijun and
               Lu, Jingwan and Zhu, Jun-Yan},
  booktitle = {ACM SIGGRAPH 2023 Conference Proceedings},
  pages     = {1--11},
  year      = {2023},
  eprint    = {2302.03027},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="pix2pix_zero",
    title="Zero-shot Image-to-Image Translation (pix2pix-zero)",
    arxiv="2302.03027",
    bibtex=BIBTEX,
    status="method + diffusers parity; demo wired to the zoo emoji model (not yet run on it)",
    demo=_demo,
    summary="Regularised DDIM inversion, sentence-bank edit directions and cross-attention "
    "guidance on Stable Diffusion.",
)
