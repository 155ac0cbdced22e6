"""Configs (frozen dataclasses) and the presets ``paper``, ``demo`` and ``tiny``.

Nothing about the paper's hyperparameters is known (spec §3.3-§4): every value below is a
placeholder of the spec **[ours]** and can be changed with ``--set key=value``
(``--set adapter.rank=8`` for the nested adapter options).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diffrepro.core.config import check_ranges

from .adapter import KV_SOURCES, SCALES

VARIANTS = ("full", "attn", "a3ft", "adapter")
PLACEMENTS = ("after", "before_proj")


@dataclass(frozen=True)
class AdapterConfig:
    """The time-aware adapter (spec §3.3). ``rank=None`` picks the bottleneck width whose
    parameter count is nearest ``budget`` × the base UNet's parameter count."""

    budget: float = 0.018
    rank: int | None = None
    kv_source: str = "fused"
    placement: str = "after"
    scale: str = "scalar"
    ln_affine: bool = True
    init_seed: int = 0

    def __post_init__(self) -> None:
        check_ranges(
            self,
            nonnegative=("init_seed",),
            choices={"kv_source": KV_SOURCES, "scale": SCALES, "placement": PLACEMENTS},
        )
        if not 0 < self.budget < 1:
            raise ValueError(f"adapter.budget must be in (0, 1), got {self.budget}")
        if self.rank is not None and (isinstance(self.rank, bool) or self.rank < 1):
            raise ValueError(f"adapter.rank must be >= 1 (or None for the budget), got {self.rank}")


@dataclass(frozen=True)
class FTConfig:
    """One fine-tuning run.

    ``variant``: ``full`` (every UNet weight, the naive baseline), ``attn`` (the attention
    blocks only), ``a3ft`` (attention blocks + adapters) or ``adapter`` (adapters only).
    ``attn_parts``: which parameters of each attention block train, as name prefixes relative
    to the block (e.g. ``qkv,proj_out`` for ADM); empty means all of them (spec default).
    ``lr`` is the learning rate of the UNet's weights, ``adapter_lr`` that of the adapters.
    ``ema_decay=None`` turns EMA off; ``grad_clip=None`` turns clipping off.
    """

    variant: str = "a3ft"
    attn_parts: tuple[str, ...] = ()
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-4
    adapter_lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float | None = 0.999
    grad_clip: float | None = None
    flip_p: float = 0.5
    checkpoint_every: int = 500
    log_every: int = 10
    sample_steps: int = 50
    num_samples: int = 16

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "sample_steps",
                     "num_samples"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_ranges(
            self,
            positive=("lr", "adapter_lr", "grad_clip"),
            nonnegative=("weight_decay",),
            fraction=("ema_decay", "flip_p"),
        )
        if any(not isinstance(p, str) or not p for p in self.attn_parts):
            raise ValueError(f"attn_parts must be non-empty names, got {self.attn_parts!r}")

    @property
    def adapter_gain(self) -> float:
        return self.adapter_lr / self.lr


PRESETS: dict[str, FTConfig] = {
    "paper": FTConfig(),
    "demo": FTConfig(
        steps=60,
        batch_size=4,
        lr=5e-4,
        adapter_lr=5e-3,
        ema_decay=None,
        checkpoint_every=20,
        sample_steps=10,
        num_samples=16,
    ),
    "tiny": FTConfig(
        steps=3,
        batch_size=2,
        lr=1e-3,
        adapter_lr=1e-2,
        ema_decay=None,
        checkpoint_every=2,
        log_every=1,
        sample_steps=2,
        num_samples=2,
    ),
}
