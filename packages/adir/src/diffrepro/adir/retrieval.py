"""The retrieval index: corpus embeddings + paths, built once, saved, and searched for K-NN.

ADIR adapts the model on the K images of a corpus nearest to the degraded image in an embedding
space (spec §3.4: CLIP, Open Images, a K-D tree, K = 20 for Guided Diffusion). Embeddings are
L2-normalised, so Euclidean K-D-tree search and brute-force cosine ranking give the same
neighbours. The query's own image is never returned (spec §9.8, leakage): corpus entries whose
path or file content (SHA-256) matches an excluded file are skipped.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from diffrepro.core.checkpoints import atomic_write
from diffrepro.core.progress import track

from .embedders import Embedder
from .images import IMAGE_EXTENSIONS, load_image

METHODS = ("kdtree", "brute")
INDEX_KEYS = ("embeddings", "paths", "digests", "embedder")


def file_digest(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}")
    return files


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (rows already of unit norm are kept bit for bit)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.allclose(norms, 1, rtol=0, atol=1e-6):
        return x
    return x / np.maximum(norms, 1e-12)


@dataclass(frozen=True, eq=False)
class RetrievalIndex:
    """Unit-norm embeddings (N, D) of the corpus images at ``paths``."""

    embeddings: np.ndarray
    paths: tuple[str, ...]
    digests: tuple[str, ...]
    embedder: str

    def __post_init__(self) -> None:
        if not len(self.paths) == len(self.digests) == len(self.embeddings):
            raise ValueError("index embeddings, paths and digests must have the same length")
        object.__setattr__(self, "embeddings", _normalise(self.embeddings))

    def __len__(self) -> int:
        return len(self.paths)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index as ``.npz`` atomically (a temporary file beside it, then a rename)."""
        path = Path(path)
        arrays = {
            "embeddings": self.embeddings,
            "paths": np.array(self.paths),
            "digests": np.array(self.digests),
            "embedder": np.array(self.embedder),
        }

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(path, write)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RetrievalIndex:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"retrieval index not found: {path} (build it with `adir index`)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise ValueError("a single array, not an .npz archive")
                missing = [k for k in INDEX_KEYS if k not in data.files]
                if missing:
                    raise ValueError(f"no {', '.join(missing)} entries")
                embeddings = np.asarray(data["embeddings"], dtype=np.float64)
                if embeddings.ndim != 2 or not np.isfinite(embeddings).all():
                    raise ValueError("the embeddings are not a finite (N, D) array")
                index = cls(
                    embeddings,
                    tuple(str(p) for p in data["paths"].tolist()),
                    tuple(str(d) for d in data["digests"].tolist()),
                    str(data["embedder"]),
                )
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if "allow_pickle" in reason:
                reason = "it holds pickled objects, which are never loaded"
            raise ValueError(
                f"{path} is not a retrieval index written by `adir index` ({reason})"
            ) from None
        return index

    def excluded(self, files: Iterable[str | os.PathLike]) -> set[int]:
        """Rows that are one of ``files`` (same resolved path or same file content)."""
        files = [Path(f) for f in files]
        resolved = {str(f.resolve()) for f in files}
        digests = {file_digest(f) for f in files if f.is_file()}
        return {
            i
            for i, (p, d) in enumerate(zip(self.paths, self.digests))
            if str(Path(p).resolve()) in resolved or d in digests
        }

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        method: str = "kdtree",
        exclude: Iterable[int] = (),
    ) -> np.ndarray:
        """Indices (Q, k) of the k nearest rows per query (closest first), skipping ``exclude``."""
        if method not in METHODS:
            raise ValueError(f"search method must be one of {METHODS}, got {method!r}")
        exclude = set(exclude)
        if not 1 <= k <= len(self) - len(exclude):
            raise ValueError(
                f"cannot retrieve k={k} neighbours from a corpus of {len(self)} images "
                f"with {len(exclude)} excluded"
            )
        queries = _normalise(np.atleast_2d(queries))
        wanted = min(len(self), k + len(exclude))
        if method == "brute":
            order = np.argsort(-(queries @ self.embeddings.T), axis=1, kind="stable")[:, :wanted]
        else:
            _, order = cKDTree(self.embeddings).query(queries, k=wanted)
            order = np.asarray(order).reshape(len(queries), wanted)
        return np.array([[i for i in row if i not in exclude][:k] for row in order])


def build_index(
    paths: Sequence[str | os.PathLike],
    embedder: Embedder,
    *,
    image_size: int = 224,
    batch_size: int = 16,
) -> RetrievalIndex:
    """Embed every image once (centre-cropped and resized to ``image_size``)."""
    if not paths:
        raise ValueError("cannot build a retrieval index from an empty corpus")
    chunks = []
    for start in track(
        range(0, len(paths), batch_size), desc="index", disable=len(paths) <= batch_size
    ):
        batch = torch.stack([load_image(p, image_size) for p in paths[start : start + batch_size]])
        chunks.append(embedder(batch).float().cpu().numpy())
    return RetrievalIndex(
        np.concatenate(chunks),
        tuple(str(Path(p).resolve()) for p in paths),
        tuple(file_digest(p) for p in paths),
        embedder.name,
    )


def tensor_index(
    images: torch.Tensor,
    embedder: Embedder,
    *,
    names: Sequence[str] | None = None,
    batch_size: int = 64,
) -> RetrievalIndex:
    """An index over an in-memory corpus (N, 3, H, W); rows are named ``names`` (default
    ``corpus:<row>``) and identified by the SHA-256 of their float32 pixels."""
    if len(images) == 0:
        raise ValueError("cannot build a retrieval index from an empty corpus")
    names = [f"corpus:{i}" for i in range(len(images))] if names is None else list(names)
    chunks = [
        embedder(images[i : i + batch_size]).float().cpu().numpy()
        for i in range(0, len(images), batch_size)
    ]
    digests = tuple(
        hashlib.sha256(img.float().contiguous().cpu().numpy().tobytes()).hexdigest()
        for img in images
    )
    return RetrievalIndex(np.concatenate(chunks), tuple(names), digests, embedder.name)
