"""Registry entry of the DiffMotion package (imports nothing heavy)."""

# ruff: noqa: E501  (the BibTeX must equal CITATION.bib line for line)

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """@inproceedings{zhang2023diffmotion,
  title     = {DiffMotion: Speech-Driven Gesture Synthesis Using Denoising Diffusion Model},
  author    = {Zhang, Fan and Ji, Naye and Gao, Fuxing and Li, Yongping},
  booktitle = {MultiMedia Modeling: 29th International Conference, MMM 2023, Bergen, Norway, January 9--12, 2023, Proceedings, Part I},
  pages     = {231--242},
  year      = {2023},
  publisher = {Springer},
  doi       = {10.1007/978-3-031-27077-2_18},
  eprint    = {2301.10047},
  archivePrefix = {arXiv}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="diffmotion",
    title="DiffMotion: Speech-Driven Gesture Synthesis Using Denoising Diffusion Model",
    arxiv="2301.10047",
    bibtex=BIBTEX,
    status="reproduced at CPU scale on synthetic speech and gestures",
    demo=_demo,
    summary="Autoregressive LSTM + per-frame DDPM: upper-body gestures (BVH) from speech.",
)
