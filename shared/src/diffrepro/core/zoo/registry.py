"""Zoo entries: a name, a model config, a training recipe, a builder and an opener.

Entries come from three places, looked up in this order: :func:`register` calls (a package's
own entries, or tests' tiny variants), the entry-point group ``diffrepro.zoo`` (each entry point
names a function returning an iterable of :class:`ZooEntry`), and the core's built-in entries
(:mod:`diffrepro.core.zoo.entries`). A package registers in its ``pyproject.toml``::

    [project.entry-points."diffrepro.zoo"]
    maskgit = "diffrepro.maskgit.zoo:zoo_entries"

The cache key hashes the entry's name, config, recipe, data version, the keys of the entries it
builds on (``requires``) and :data:`ZOO_FORMAT`: change any of them and the model is rebuilt.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ZOO_FORMAT = 1  # bump when the cache layout or the build protocol changes
ENTRY_POINT_GROUP = "diffrepro.zoo"


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What a builder gets besides its entry: where to write, the device, and its inputs."""

    out_dir: Path  # an empty folder; everything the model needs goes here
    device: str = "cpu"
    requires: dict[str, Path] = dataclasses.field(default_factory=dict)  # name -> built folder


Builder = Callable[["ZooEntry", BuildContext], dict[str, Any]]
Opener = Callable[[Path, str], Any]


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """A named base model.

    ``build(entry, ctx)`` trains and writes the model's files into ``ctx.out_dir`` and returns
    the card's facts (a flat dict: training time, final loss, measured quality, ...);
    ``open(folder, device)`` returns the usable model from a built folder. ``config`` and
    ``recipe`` are frozen dataclasses (or JSON-able dicts); ``card`` is the text of the card's
    description and honest-limits sections.
    """

    name: str
    summary: str
    config: Any
    recipe: Any
    build: Builder
    open: Opener
    data_version: str = ""
    requires: tuple[str, ...] = ()
    card: str = ""

    def describe(self) -> dict[str, Any]:
        """The JSON-able identity of the entry (what the key hashes)."""
        return {
            "name": self.name,
            "format": ZOO_FORMAT,
            "config": _as_json(self.config),
            "recipe": _as_json(self.recipe),
            "data_version": self.data_version,
            "requires": {name: get(name).key() for name in self.requires},
        }

    def key(self) -> str:
        """12 hex digits of the SHA-256 of :meth:`describe`."""
        text = json.dumps(self.describe(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


_REGISTERED: dict[str, ZooEntry] = {}


def register(entry: ZooEntry, *, replace: bool = False) -> ZooEntry:
    """Add ``entry`` to the zoo (``replace=True`` to redefine a name, e.g. in tests)."""
    if not replace and entry.name in entries():
        raise ValueError(f"zoo entry {entry.name!r} is already registered")
    _REGISTERED[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove an entry added with :func:`register` (built-in ones stay)."""
    _REGISTERED.pop(name, None)


def entries() -> dict[str, ZooEntry]:
    """Every known entry by name: registered ones over entry points over built-ins."""
    found = dict(_builtin_entries())
    found.update(_entry_point_entries())
    found.update(_REGISTERED)
    return found


def get(name: str) -> ZooEntry:
    known = entries()
    if name not in known:
        raise ValueError(f"unknown zoo entry {name!r}; known: {', '.join(sorted(known)) or 'none'}")
    return known[name]


@functools.cache
def _builtin_entries() -> dict[str, ZooEntry]:
    from diffrepro.core.zoo.entries import builtin_entries

    return {e.name: e for e in builtin_entries()}


@functools.cache
def _entry_point_entries() -> dict[str, ZooEntry]:
    found: dict[str, ZooEntry] = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        provided: Iterable[ZooEntry] = point.load()()
        for entry in provided:
            if not isinstance(entry, ZooEntry):
                raise TypeError(f"entry point {point.value} gave {type(entry).__name__}")
            found[entry.name] = entry
    return found


def _as_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
