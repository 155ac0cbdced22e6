"""Registry entry of the Imagic package (imports nothing heavy)."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.papers import Paper
from diffrepro.core.report import DemoResult

BIBTEX = """\
@inproceedings{kawar2023imagic,
  title     = {Imagic: Text-Based Real Image Editing with Diffusion Models},
  author    = {Kawar, Bahjat and Zada, Shiran and Lang, Oran and Tov, Omer and Chang, Huiwen and
               Dekel, Tali and Mosseri, Inbar and Irani, Michal},
  booktitle = {Conference on Computer Vision and Pattern Recognition 2023},
  year      = {2023}
}
"""


def _demo(out_dir: Path, *, device: str = "cpu", seed: int = 0, quick: bool = False) -> DemoResult:
    from .demo import demo

    return demo(out_dir, device=device, seed=seed, quick=quick)


PAPER = Paper(
    slug="imagic",
    title="Imagic: Text-Based Real Image Editing with Diffusion Models",
    arxiv="2210.09276",
    bibtex=BIBTEX,
    status="implemented and tested on the SD layout; the CPU demo on the zoo emoji model is "
    "written (quick path tested) but was not yet run at full scale",
    demo=_demo,
    summary="Optimise the target text embedding on the image (A), fine-tune the UNet on it (B), "
    "then sample from an interpolation of the optimised and target embeddings (C).",
)
