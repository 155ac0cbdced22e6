"""The zoo's on-disk cache: ``$XDG_CACHE_HOME/diffrepro/zoo/<name>-<key>/``.

A built entry is a folder holding the model files, ``card.md`` and ``zoo.json`` (the entry's
identity, the SHA-256 and size of every file, the card's facts). It is complete or absent:

- builders write into ``.<name>-<key>.tmp-<pid>/`` and the folder is renamed into place only
  after every weights file was checked finite and ``zoo.json`` was written;
- builders of the same entry take an exclusive lock (``.<name>-<key>.lock``, ``fcntl.flock``),
  and whoever gets it second finds the first one's result and does not build again;
- a folder whose ``zoo.json`` is missing or does not match its files (a partial copy, an edited
  or truncated file) is corrupt: it is reported in one line and replaced by a fresh build;
- folders of the same name with another key (built by another checkout or an older version)
  are kept, so that two checkouts sharing one cache never delete each other's models; a build
  says they exist, and ``diffrepro zoo prune`` (:func:`prune`) removes them.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from diffrepro.core.emoji.data import cache_dir
from diffrepro.core.zoo.registry import BuildContext, ZooEntry, get
from diffrepro.core.zoo.report import CARD, write_card

MANIFEST = "zoo.json"
QUALITY = "quality.json"  # written later by the benchmark; like card.md, not hashed
UNHASHED = (MANIFEST, QUALITY, CARD)


def zoo_root() -> Path:
    """``$XDG_CACHE_HOME/diffrepro/zoo`` (``$DIFFREPRO_ZOO_DIR`` overrides it)."""
    override = os.environ.get("DIFFREPRO_ZOO_DIR")
    return Path(override) if override else cache_dir() / "zoo"


def entry_folder(entry: ZooEntry, root: Path | None = None) -> Path:
    return (root or zoo_root()) / f"{entry.name}-{entry.key()}"


def problem(entry: ZooEntry, folder: Path) -> str | None:
    """Why ``folder`` is not a complete build of ``entry`` (None when it is)."""
    if not folder.is_dir():
        return "not built"
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{MANIFEST} is missing or unreadable"
    if manifest.get("key") != entry.key():
        return f"its key {manifest.get('key')!r} is not {entry.key()!r}"
    for name, (size, digest) in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size or _sha256(path) != digest:
            return f"{name} is missing or changed"
    return None


def built(entry: ZooEntry, root: Path | None = None) -> Path | None:
    """The folder of a complete build of ``entry``, or None."""
    folder = entry_folder(entry, root)
    return folder if problem(entry, folder) is None else None


def ensure_built(
    entry: ZooEntry, *, root: Path | None = None, device: str = "cpu", force: bool = False
) -> Path:
    """The built folder of ``entry``, building it (and what it requires) if needed."""
    root = root or zoo_root()
    folder = entry_folder(entry, root)
    if not force and problem(entry, folder) is None:
        return folder
    requires = {name: ensure_built(get(name), root=root, device=device) for name in entry.requires}
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{folder.name}.lock"):
        why = problem(entry, folder)
        if why is None and not force:
            return folder  # another process built it while we waited
        if why != "not built":
            _notice(f"{entry.name}: cached build at {folder} is unusable ({why}); rebuilding")
        if others := _other_builds(entry, root):
            names = ", ".join(p.name for p in others)
            _notice(f"{entry.name}: other builds kept ({names}); `diffrepro zoo prune` drops them")
        for orphan in root.glob(f".{folder.name}.tmp-*"):  # interrupted builds (we hold the lock)
            shutil.rmtree(orphan, ignore_errors=True)
        tmp = root / f".{folder.name}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True)
        try:
            _build_into(entry, tmp, BuildContext(tmp, device, requires))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _build_into(entry: ZooEntry, tmp: Path, ctx: BuildContext) -> None:
    _notice(f"{entry.name}: building (key {entry.key()}) into {tmp.parent}")
    start = time.perf_counter()
    facts = dict(entry.build(entry, ctx) or {})
    facts.setdefault("build_seconds", round(time.perf_counter() - start, 1))
    check_finite(tmp)
    manifest: dict[str, Any] = {
        **entry.describe(),
        "key": entry.key(),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "facts": facts,
    }
    write_card(entry, tmp, manifest)
    manifest["files"] = {
        str(p.relative_to(tmp)): [p.stat().st_size, _sha256(p)]
        for p in sorted(tmp.rglob("*"))
        if p.is_file() and str(p.relative_to(tmp)) not in UNHASHED
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def check_finite(folder: Path) -> None:
    """Raise ``FloatingPointError`` if any ``.safetensors`` under ``folder`` holds NaN or inf."""
    for path in sorted(folder.rglob("*.safetensors")):
        for name, tensor in load_file(str(path)).items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise FloatingPointError(
                    f"{path.name}: {name} is not finite; the model is not cached"
                )


def read_manifest(folder: Path) -> dict[str, Any]:
    """``zoo.json`` of a built folder, with the benchmark's ``quality`` facts if measured."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if (folder / QUALITY).is_file():
        manifest["quality"] = json.loads((folder / QUALITY).read_text(encoding="utf-8"))
    return manifest


def record_quality(entry: ZooEntry, folder: Path, quality: dict[str, Any]) -> Path:
    """Store measured quality beside a build and rewrite its card with it."""
    (folder / QUALITY).write_text(json.dumps(quality, indent=2, sort_keys=True))
    return write_card(entry, folder, read_manifest(folder))


def prune(entries: list[ZooEntry], root: Path | None = None) -> list[Path]:
    """Remove the builds of ``entries`` whose key is not the current one; returns them."""
    root = root or zoo_root()
    removed = []
    for entry in entries:
        for other in _other_builds(entry, root):
            with _lock(root / f".{other.name}.lock"):
                shutil.rmtree(other, ignore_errors=True)
            (root / f".{other.name}.lock").unlink(missing_ok=True)
            removed.append(other)
    return removed


def _other_builds(entry: ZooEntry, root: Path) -> list[Path]:
    current = entry_folder(entry, root).name
    prefix = f"{entry.name}-"
    return [
        p
        for p in root.glob(f"{entry.name}-*")
        if p.is_dir() and p.name != current and len(p.name) == len(prefix) + 12
    ]


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _notice(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)
