"""Registry entry of the EDICT package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """@inproceedings{wallace2023edict,
  title     = {{EDICT}: Exact Diffusion Inversion via Coupled Transformations},
  author    = {Wallace, Bram and Gokul, Akash and Naik, Nikhil},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  pages     = {22532--22541},
  year      = {2023},
  note      = {arXiv:2211.12446}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="edict",
    title="EDICT: Exact Diffusion Inversion via Coupled Transformations",
    arxiv="2211.12446",
    bibtex=BIBTEX,
    status="exactness reproduced on a tiny Stable Diffusion-layout model (float64 round trip)",
    demo=_demo,
    summary="Two coupled DDIM sequences with a mixing layer make diffusion inversion exactly "
    "invertible, so real images can be reconstructed to the autoencoder's floor and edited.",
)
