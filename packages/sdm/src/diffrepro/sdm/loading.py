"""Loading a trained generator: from a checkpoint, or the demo's cached model."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.checkpoints import load_checkpoint, load_state_dict
from diffrepro.core.config import config_from_saved, select_preset
from diffrepro.sdm.config import PRESETS, SDMConfig
from diffrepro.sdm.network import SDMNetwork


def generator_from_checkpoint(path: Path) -> tuple[SDMNetwork, SDMConfig]:
    """The generator and config in a ``generator_ema.safetensors`` written by ``sdm train``."""
    weights, config = load_checkpoint(path)
    if not config:
        raise ValueError(f"{path} carries no SDM config: was it written by `sdm train`?")
    saved_class = config.get("model_class")  # a core training checkpoint (another paper's)
    if isinstance(saved_class, str):
        cfg = config_from_saved(SDMConfig, config.get("model"), str(path), saved_class=saved_class)
    else:
        cfg = config_from_saved(SDMConfig, config, str(path))
    from diffrepro.sdm.train import check_finite_weights

    check_finite_weights(weights, str(path))
    generator = SDMNetwork(cfg.network)
    load_state_dict(generator, weights, source=str(path))
    return generator.eval(), cfg


def load_generator(checkpoint: Path | None, preset: str) -> tuple[SDMNetwork, SDMConfig]:
    """``checkpoint`` if given, else the newest model ``sdm demo`` cached for ``preset``."""
    if checkpoint is not None:
        return generator_from_checkpoint(checkpoint)
    from diffrepro.sdm.demo import cached_models

    cached = cached_models(select_preset(PRESETS, preset))
    if not cached:
        raise FileNotFoundError(
            f"no --checkpoint given and no cached {preset!r} model: "
            "run `sdm demo` or `sdm train` first"
        )
    return generator_from_checkpoint(cached[0])
