"""MaskSketch sampler settings and presets (``paper``, ``demo``, ``tiny``).

MaskSketch adds no parameters to MaskGIT: its config is the sampler's. Defaults are the official
``masksketch_class_cond_config`` (spec §3.4, §4); options cover the spec's ambiguous points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STRUCTURE_MODES = ("sym_ce", "sym_kl")
GUIDANCE_ROWS = ("all", "first-two")
SCORERS = ("structure", "classifier", "random")
SKETCH_METHODS = ("canny", "sobel")


@dataclass(frozen=True)
class MaskSketchConfig:
    """Structure-guided decoding of a class-conditional MaskGIT.

    - ``layers``: 0-indexed transformer layers whose self-attention defines the structure
      (official (1, 3, 16, 20, 21, 22) of 24); ``None`` = every layer.
    - ``structure_mode``: ``sym_ce`` (the official code: symmetric cross-entropy of attention
      rows, i.e. symmetric KL plus both row entropies) or ``sym_kl`` (the paper's wording).
    - ``lambda_structure`` λs: the share of each step's re-mask budget spent on the lowest
      structure scores; the rest, 1 - λs, goes to the lowest confidences.
    - ``min_mask_rate`` / ``max_mask_rate``: the budget m_t = m_min + γ((t+1)/T)(m_max - m_min)
      of the N0 initially masked tokens; ``max_mask_rate`` also sets N0 = min(⌈m_max N⌉, N - 1).
    - ``temperature_structure`` / ``temperature_confidence``: Gumbel noise on the two rankings
      (official 0: exact lowest-k).
    - ``guidance_scale`` s: ℓ = ℓc + s (ℓc - ℓu); ℓu from a random real class drawn once per
      call. ``guidance_rows``: ``all`` (fixed) or ``first-two`` (the official quirk: only batch
      rows 0-1 get the unconditional class, the others get no guidance).
    - ``candidates`` K per sketch and the ``scorer`` that keeps the best one.
    """

    layers: tuple[int, ...] | None = (1, 3, 16, 20, 21, 22)
    structure_mode: str = "sym_ce"
    lambda_structure: float = 0.9
    min_mask_rate: float = 0.35
    max_mask_rate: float = 0.95
    num_iter: int = 500
    schedule: str = "linear"
    temperature_structure: float = 0.0
    temperature_confidence: float = 0.0
    guidance_scale: float = 0.6
    guidance_rows: str = "all"
    candidates: int = 8
    scorer: str = "structure"
    sketch_method: str = "canny"

    def __post_init__(self) -> None:
        from diffrepro.maskgit.schedule import canonical

        layers = self.layers
        if layers is not None and (
            not layers or min(layers) < 0 or len(set(layers)) != len(layers)
        ):
            raise ValueError(f"layers must be distinct indices >= 0, got {layers}")
        for name, choices in (
            ("structure_mode", STRUCTURE_MODES),
            ("guidance_rows", GUIDANCE_ROWS),
            ("scorer", SCORERS),
            ("sketch_method", SKETCH_METHODS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}"
                )
        for name in ("lambda_structure", "min_mask_rate", "max_mask_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.min_mask_rate > self.max_mask_rate:
            raise ValueError(
                f"min_mask_rate {self.min_mask_rate} exceeds max_mask_rate {self.max_mask_rate}"
            )
        for name in ("temperature_structure", "temperature_confidence", "guidance_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("num_iter", "candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        canonical(self.schedule)

    def layers_for(self, depth: int) -> tuple[int, ...]:
        """The chosen layers, checked against a transformer of ``depth`` layers."""
        layers = tuple(range(depth)) if self.layers is None else self.layers
        if max(layers) >= depth:
            raise ValueError(
                f"layers {list(layers)} do not exist in a {depth}-layer transformer "
                f"(valid: 0..{depth - 1})"
            )
        return layers


PAPER = MaskSketchConfig()
"""The official settings (T = 500 as in the released demo; the config file says 1000)."""

DEMO = MaskSketchConfig(layers=None, num_iter=48)
"""The emoji MaskGIT has 3 layers: all of them (the premise check ranks them)."""

TINY = MaskSketchConfig(layers=(0, 1), num_iter=4, candidates=2)

PRESETS: dict[str, MaskSketchConfig] = {"paper": PAPER, "demo": DEMO, "tiny": TINY}
