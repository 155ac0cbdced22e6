"""Registry entry of the limited-data fine-tuning package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@inproceedings{moon2022neuripsw-finetuning,
  title     = {Fine-Tuning Diffusion Models with Limited Data},
  author    = {Moon, Taehong and Choi, Moonseok and Lee, Gayoung and Ha, Jung-Woo and Lee, Juho},
  booktitle = {NeurIPS 2022 Workshop on Score-Based Methods (SBM)},
  year      = {2022},
  url       = {https://mlanthology.org/neuripsw/2022/moon2022neuripsw-finetuning/}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="limited_data_ft",
    title="Fine-Tuning Diffusion Models with Limited Data (A3FT, reconstructed)",
    arxiv=None,
    bibtex=BIBTEX,
    status="reconstructed method (the paper's text is unavailable), implemented and tested; "
    "the CPU demo on the zoo's emoji DDPM is written, its full run waits for the zoo model",
    demo=_demo,
    summary="Few-shot fine-tuning of a pretrained pixel DDPM: all weights vs attention blocks "
    "only vs attention + time-aware adapters (A3FT), measured over training time.",
)
