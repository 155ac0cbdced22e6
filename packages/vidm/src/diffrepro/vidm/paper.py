"""VIDM's entry in the diffrepro paper registry (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@inproceedings{mei2023vidm,
  title     = {{VIDM}: Video Implicit Diffusion Models},
  author    = {Mei, Kangfu and Patel, Vishal M.},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {37},
  number    = {8},
  year      = {2023},
  doi       = {10.1609/aaai.v37i8.26094},
  eprint    = {2212.00235},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}
"""


def demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from diffrepro.vidm.demo import run_demo

    return run_demo(Path(out_dir), device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="vidm",
    title="VIDM: Video Implicit Diffusion Models",
    arxiv="2212.00235",
    bibtex=BIBTEX,
    status="reproduced at CPU scale on emoji sprite videos (paper tables unavailable)",
    demo=demo,
    summary="Two-stage video diffusion: a content DDPM for the first frame, a motion DDPM for each "
    "next frame conditioned on the first frame, the flow so far and the frame index (PosGN).",
)
