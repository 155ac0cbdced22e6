"""Presets, --set overrides and JSON round trips of frozen config dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from diffrepro.core.config import (
    apply_overrides,
    config_to_dict,
    load_config,
    save_config,
    select_preset,
)


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-4
    betas: tuple[float, ...] = (0.9, 0.999)


@dataclass(frozen=True)
class Cfg:
    steps: int = 10
    name: str = "base"
    ema: bool = True
    channel_mult: tuple[int, ...] = (1, 2)
    checkpoint: str | None = None
    optim: Optim = field(default_factory=Optim)


def test_overrides_parse_to_field_types() -> None:
    cfg = apply_overrides(
        Cfg(),
        ["steps=3", "ema=false", "channel_mult=1,2,4", "optim.lr=0.5", "checkpoint=w.pt"],
    )
    assert cfg == Cfg(3, "base", False, (1, 2, 4), "w.pt", Optim(lr=0.5))
    assert apply_overrides(cfg, ["checkpoint=none", "optim.betas=[0.5, 0.6]"]) == Cfg(
        3, "base", False, (1, 2, 4), None, Optim(0.5, (0.5, 0.6))
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stepz=3", "no field 'stepz'"),
        ("steps=abc", "expects int"),
        ("ema=maybe", "true/false"),
        ("steps", "key=value"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_overrides(Cfg(), [override])


def test_select_preset_lists_known() -> None:
    presets = {"tiny": Cfg(steps=1), "paper": Cfg(steps=1000)}
    assert select_preset(presets, "tiny").steps == 1
    with pytest.raises(ValueError, match="tiny, paper"):
        select_preset(presets, "huge")


def test_json_round_trip(tmp_path: Path) -> None:
    cfg = Cfg(steps=7, channel_mult=(1, 3), optim=Optim(lr=2.0))
    path = save_config(cfg, tmp_path / "sub" / "config.json")
    assert load_config(path, Cfg) == cfg
    assert config_to_dict(cfg)["optim"] == {"lr": 2.0, "betas": [0.9, 0.999]}
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.json", Cfg)
