"""Pytest fixtures and checks for the tests of single-image fine-tuning packages (Imagic, SINE).

Import the fixtures into a package's ``conftest.py`` (pytest finds them there)::

    from diffrepro.core.finetune_fixtures import image, same_state, sd, state_hashes  # noqa: F401

- ``sd``: the tiny seeded SD stack (seed 0); ``image``: a 32 px red square on white (3, 32, 32)
  in [-1, 1]; ``state_hashes``: :func:`state_copy`, a detached copy of a module's state dict.
- :func:`same_state`: whether a module's state equals such a copy, key for key, bit for bit.
- :func:`write_rgba_image`: a small RGBA PNG (a red box, a transparent top band) for CLI tests.
- :func:`check_demo_needs_built_zoo`: ``demo`` without a built zoo fails with one clean line;
  :func:`check_fails_cleanly`: a bad command line fails the same way and changes no file.
- :func:`bundle_state` / :func:`assert_bundle_unchanged`: a shared SD bundle left as it was
  (weights, requires-grad flags, modes, dtype, UNet class, tokenizer).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffrepro.core.models.sd_tiny import tiny_stable_diffusion


@pytest.fixture
def sd():
    return tiny_stable_diffusion(seed=0)


def red_square() -> torch.Tensor:
    """A 32x32 red square on white (3, 32, 32) in [-1, 1]."""
    out = torch.ones(3, 32, 32)
    out[:, 8:24, 10:26] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    return out


@pytest.fixture
def image():
    return red_square()


def state_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture
def state_hashes():
    return state_copy


def same_state(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    after = module.state_dict()
    return set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)


def write_rgba_image(path: Path, size: tuple[int, int] = (40, 36)) -> Path:
    """``size`` = (width, height): white, a red box at rows 8-24 / columns 6-22, the top four
    rows transparent."""
    import numpy as np
    from PIL import Image

    array = np.full((size[1], size[0], 4), 255, dtype=np.uint8)
    array[8:24, 6:22, :3] = (200, 30, 40)
    array[:4, :, 3] = 0
    Image.fromarray(array, "RGBA").save(path)
    return path


def check_demo_needs_built_zoo(main, tmp_path: Path, monkeypatch, capsys) -> None:
    """``main(["demo", ...])`` with an empty zoo and building off: exit 2, one "not built" line."""
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.setenv("DIFFREPRO_ZOO_BUILD", "0")
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not built" in err, err


def check_fails_cleanly(main, argv: list[str], root: Path, *, prog: str, message: str, capsys):
    """``main(argv)``: exit 2, one stderr line ``<prog> ... error: ...`` holding ``message``, and
    nothing under ``root`` changed."""
    from diffrepro.core.testing import snapshot

    before = snapshot(root)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(prog) and "error:" in err and message in err, err
    assert snapshot(root) == before


BUNDLE_PARTS = ("unet", "vae", "text_encoder")


def bundle_state(sd) -> dict:
    """What a method must leave as it found in a shared SD bundle: every weight, requires-grad
    flag and train/eval mode of its networks, its dtype, the UNet's class and the tokenizer."""
    parts = {name: getattr(sd, name) for name in BUNDLE_PARTS}
    return {
        "state": {name: state_copy(net) for name, net in parts.items()},
        "grad": {name: [p.requires_grad for p in net.parameters()] for name, net in parts.items()},
        "training": {name: net.training for name, net in parts.items()},
        "dtype": sd.dtype,
        "unet": type(sd.unet),
        "tokens": sd.tokenizer.encode("a sks red square"),
    }


def assert_bundle_unchanged(sd, before: dict) -> None:
    """``sd`` is as :func:`bundle_state` found it."""
    for name, state in before["state"].items():
        assert same_state(state, getattr(sd, name)), f"{name} weights changed"
    after = bundle_state(sd)
    for key in before:
        if key != "state":
            assert after[key] == before[key], f"{key} changed"
