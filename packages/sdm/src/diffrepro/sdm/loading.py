"""Loading a trained generator: from a checkpoint, or the zoo entry ``sdm-emoji``."""

from __future__ import annotations

from pathlib import Path

from diffrepro.core.checkpoints import load_checkpoint, load_state_dict
from diffrepro.core.config import config_from_saved
from diffrepro.sdm.config import SDMConfig
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


def load_generator(checkpoint: Path | None) -> tuple[SDMNetwork, SDMConfig]:
    """``checkpoint`` if given, else the zoo's ``sdm-emoji`` (never built here: a missing build
    is the zoo's one-line FileNotFoundError naming the build command)."""
    if checkpoint is not None:
        return generator_from_checkpoint(checkpoint)
    from diffrepro.core import zoo
    from diffrepro.sdm.emoji_model import NAME, WEIGHTS

    return generator_from_checkpoint(zoo.path(NAME, build=False) / WEIGHTS)
