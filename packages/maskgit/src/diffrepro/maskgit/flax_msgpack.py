"""Reading Flax checkpoints (``flax.serialization.to_bytes``) with msgpack + numpy, no JAX.

Arrays are msgpack ExtType code 1 whose payload is msgpack of (shape, dtype name, C-order bytes);
code 2 is a complex scalar, code 3 a numpy scalar. Flax's chunked encoding of arrays above 2³⁰
bytes (a dict with the ``__msgpack_chunked_array__`` marker) is refused: no MaskGIT tensor is
that large. :func:`pack_flax` writes the same format (used by the tests' synthetic checkpoints).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

NDARRAY, COMPLEX, SCALAR = 1, 2, 3
CHUNKED_MARKER = "__msgpack_chunked_array__"


def _dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        raise ValueError("bfloat16 arrays need a bfloat16 dtype; convert the checkpoint to fp32")
    return np.dtype(name)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == NDARRAY:
        shape, name, buffer = msgpack.unpackb(data)
        return np.frombuffer(buffer, dtype=_dtype(name)).reshape(shape)
    if code == COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    if code == SCALAR:
        name, buffer = msgpack.unpackb(data)
        return np.frombuffer(buffer, dtype=_dtype(name))[0]
    raise ValueError(f"unknown msgpack extension type {code}")


def _check_chunks(tree: Any, path: str = "") -> None:
    if isinstance(tree, Mapping):
        if CHUNKED_MARKER in tree:
            raise ValueError(
                f"{path or 'the root'} is a Flax chunked array (over 2^30 bytes), which this "
                "reader does not support"
            )
        for key, value in tree.items():
            _check_chunks(value, f"{path}.{key}" if path else str(key))


def unpack_flax(data: bytes, source: str = "the data") -> dict[str, Any]:
    """The nested dict of numpy arrays in a Flax msgpack byte string."""
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (
        msgpack.exceptions.ExtraData,
        msgpack.exceptions.UnpackValueError,
        ValueError,
        TypeError,
    ) as err:
        raise ValueError(f"{source} is not a Flax msgpack checkpoint: {err}") from None
    if not isinstance(tree, dict):
        raise ValueError(f"{source} is not a Flax msgpack checkpoint (no top-level dict)")
    _check_chunks(tree)
    return tree


def read_flax(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return unpack_flax(path.read_bytes(), str(path))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a": {"b": x}}`` → ``{"a.b": x}``."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = np.asarray(value)
    return flat


def params_of(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter tree: ``tree["params"]`` (or ``tree["target"]["params"]``) else ``tree``."""
    if "target" in tree and isinstance(tree["target"], Mapping):
        tree = tree["target"]
    return tree["params"] if "params" in tree else dict(tree)


def _ext_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        payload = msgpack.packb((list(obj.shape), obj.dtype.name, obj.tobytes(order="C")))
        return msgpack.ExtType(NDARRAY, payload)
    if isinstance(obj, np.generic):
        return msgpack.ExtType(SCALAR, msgpack.packb((obj.dtype.name, obj.tobytes())))
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def pack_flax(tree: Mapping[str, Any]) -> bytes:
    """Serialise a nested dict of numpy arrays the way ``flax.serialization.to_bytes`` does."""
    return msgpack.packb(tree, default=_ext_default, use_bin_type=True)
