"""The registry entry of this package (imports cheaply; the demo loads torch when it runs)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@inproceedings{bashkirova2023masksketch,
  title     = {{MaskSketch}: Unpaired Structure-guided Masked Image Generation},
  author    = {Bashkirova, Dina and Lezama, Jos{\\'e} and Sohn, Kihyuk and Saenko, Kate and
               Essa, Irfan},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern
               Recognition (CVPR)},
  year      = {2023},
  pages     = {1879--1889}
}
"""


def run_demo(
    out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False
) -> DemoResult:
    from diffrepro.masksketch.demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="masksketch",
    title="MaskSketch: Unpaired Structure-guided Masked Image Generation",
    arxiv="2302.05496",
    bibtex=BIBTEX,
    status="sampler reproduced on the zoo's emoji MaskGIT (CPU scale); official weights load "
    "through the maskgit package",
    demo=run_demo,
    summary="Training-free sketch-to-image: MaskGIT decoding that re-masks tokens whose "
    "self-attention disagrees with the sketch's.",
)
