"""The zoo: small base models trained on the embedded emoji at first use, then cached.

::

    from diffrepro.core import zoo
    sd = zoo.load("emoji-t2i")          # a StableDiffusion bundle (diffusers-layout folder)
    judge = zoo.load("emoji-judge")     # EmojiJudge: coarse classes, identity, features
    ddpm = zoo.load("emoji-ddpm")       # PixelDiffusion: an ADM UNetModel + its schedule
    folder = zoo.path("emoji-t2i")      # the built folder (StableDiffusion.load(folder) works)

``load`` builds a missing entry first (minutes on a CPU; progress is shown) unless
``build=False``, in which case a missing model is a ``FileNotFoundError`` naming the command
that builds it. See :mod:`diffrepro.core.zoo.registry` for entries and registration and
:mod:`diffrepro.core.zoo.cache` for the cache's guarantees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from diffrepro.core.zoo.cache import (
    built,
    ensure_built,
    read_manifest,
    record_quality,
    zoo_root,
)
from diffrepro.core.zoo.registry import (
    ENTRY_POINT_GROUP,
    BuildContext,
    ZooEntry,
    entries,
    get,
    register,
    unregister,
)
from diffrepro.core.zoo.report import CARD


def path(
    name: str | ZooEntry,
    *,
    build: bool = True,
    device: str = "cpu",
    root: str | os.PathLike | None = None,
) -> Path:
    """The folder of a complete build of ``name`` (building it first when ``build``)."""
    entry = get(name) if isinstance(name, str) else name
    root_path = Path(root) if root is not None else None
    if build:
        return ensure_built(entry, root=root_path, device=device)
    folder = built(entry, root_path)
    if folder is None:
        raise FileNotFoundError(
            f"zoo model {entry.name!r} is not built; build it with "
            f"`uv run diffrepro zoo build {entry.name}` (a few minutes on a CPU)"
        )
    return folder


def load(
    name: str | ZooEntry,
    *,
    device: str = "cpu",
    build: bool = True,
    root: str | os.PathLike | None = None,
) -> Any:
    """The model of entry ``name`` on ``device``, built on first use (see :func:`path`)."""
    entry = get(name) if isinstance(name, str) else name
    folder = path(entry, build=build, device="cpu", root=root)
    return entry.open(folder, device)


def card(name: str | ZooEntry, *, root: str | os.PathLike | None = None) -> str:
    """The text of a built entry's ``card.md``."""
    return (path(name, build=False, root=root) / CARD).read_text(encoding="utf-8")


__all__ = [
    "ENTRY_POINT_GROUP",
    "BuildContext",
    "ZooEntry",
    "built",
    "card",
    "ensure_built",
    "entries",
    "get",
    "load",
    "path",
    "read_manifest",
    "record_quality",
    "register",
    "unregister",
    "zoo_root",
]
