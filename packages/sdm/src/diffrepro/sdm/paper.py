"""The registry entry of this package (imports cheaply; the demo loads torch when it runs)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@inproceedings{li2024psm,
  title     = {Image Inpainting via Iteratively Decoupled Probabilistic Modeling},
  author    = {Li, Wenbo and Yu, Xin and Zhou, Kun and Song, Yibing and Lin, Zhe},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2024}
}

@article{li2022sdm,
  title   = {{SDM}: Spatial Diffusion Model for Large Hole Image Inpainting},
  author  = {Li, Wenbo and Yu, Xin and Zhou, Kun and Song, Yibing and Lin, Zhe and Jia, Jiaya},
  journal = {arXiv preprint arXiv:2212.02963},
  year    = {2022}
}
"""


def run_demo(
    out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False
) -> DemoResult:
    from diffrepro.sdm.demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="sdm",
    title="SDM: Spatial Diffusion Model for Large Hole Image Inpainting (PSM, ICLR 2024)",
    arxiv="2212.02963",
    bibtex=BIBTEX,
    status="reproduced at CPU scale on 32 px emoji (no official code or weights exist)",
    demo=run_demo,
    summary="Iterative predict → pick → sample inpainting with decoupled mean / variance and "
    "uncertainty-guided attention; trained from scratch at toy scale on CPU (zoo: sdm-emoji).",
)
