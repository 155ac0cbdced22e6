"""The registry entry of this package (imports cheaply; the demo loads torch when it runs)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@inproceedings{chang2022maskgit,
  title     = {{MaskGIT}: Masked Generative Image Transformer},
  author    = {Chang, Huiwen and Zhang, Han and Jiang, Lu and Liu, Ce and Freeman, William T.},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  month     = {June},
  year      = {2022},
  pages     = {11315--11325}
}
"""


def run_demo(
    out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False
) -> DemoResult:
    from diffrepro.maskgit.demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="maskgit",
    title="MaskGIT: Masked Generative Image Transformer",
    arxiv="2202.04200",
    bibtex=BIBTEX,
    status="reproduced at CPU scale on emoji; official Flax weights load without JAX",
    demo=run_demo,
    summary="VQGAN tokens + bidirectional transformer trained by masked token modelling, "
    "sampled with the official iterative parallel decoding (8 steps instead of N).",
)
