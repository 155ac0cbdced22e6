"""Registry entry of the SINE package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@inproceedings{zhang2023sine,
  title     = {SINE: SINgle Image Editing with Text-to-Image Diffusion Models},
  author    = {Zhang, Zhixing and Han, Ligong and Ghosh, Arnab and Metaxas, Dimitris and Ren, Jian},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and
               Pattern Recognition (CVPR)},
  year      = {2023},
  note      = {arXiv:2212.04489}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="sine",
    title="SINE: SINgle Image Editing with Text-to-Image Diffusion Models",
    arxiv="2212.04489",
    bibtex=BIBTEX,
    status="implemented and tested on the SD layout; the CPU demo on the zoo emoji model is "
    "written (quick path tested) but was not yet run at full scale",
    demo=_demo,
    summary="Fine-tune a copy of the model on one image (optionally on patches with positional "
    "encoding), then edit with model-based classifier-free guidance mixing both models.",
)
