"""The editing contract every method follows, and how methods are found.

A method is an :class:`EditMethod`: a name, a title and an ``edit`` function::

    def edit(sd: StableDiffusion, image: Tensor, source: str, target: str, *,
             seed: int, steps: int) -> EditResult

``image`` is one source image (1, 3, H, W) in [-1, 1] at the base model's native size;
``source`` / ``target`` are the source and target prompts; ``seed`` seeds every random draw of
the method (the same seed gives the same edit); ``steps`` is the DDIM step count the method
maps onto its own grid. It returns the edited image, the reconstruction with the source prompt
(the method's edit run with ``target = source``; ``None`` where the method has no inversion) and
the number of UNet evaluations the edit took (count them with :func:`count_unet_evals`; a
classifier-free-guided step costs two, the reconstruction is not counted).

Paper packages register a function returning their methods in the entry-point group
``diffrepro.editing``::

    [project.entry-points."diffrepro.editing"]
    edict = "diffrepro.edict.compare:editing_methods"

The module must import cheaply; :func:`discover` skips a package whose entry point fails to load
and says so, so one broken install does not hide the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points

import torch
from torch import Tensor

from diffrepro.core.models.stable_diffusion import StableDiffusion

EDITING_GROUP = "diffrepro.editing"


@dataclass(frozen=True)
class EditResult:
    """What one edit hands back (images (1, 3, H, W), nominally in [-1, 1])."""

    edited: Tensor
    reconstruction: Tensor | None
    unet_evals: int


EditFn = Callable[..., EditResult]


@dataclass(frozen=True)
class EditMethod:
    """One editing method: ``name`` is its column in the table (lower case, no spaces)."""

    name: str
    title: str
    edit: EditFn
    package: str = "diffrepro-core"

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name) or self.name != self.name.lower():
            raise ValueError(f"an editing method name must be lower case, no spaces: {self.name!r}")


@contextlib.contextmanager
def count_unet_evals(sd: StableDiffusion) -> Iterator[list[int]]:
    """Count UNet evaluations (batch rows of every forward call) inside the block.

    ``with count_unet_evals(sd) as n: ...`` then ``n[0]`` is the count.
    """
    count = [0]

    def hook(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        count[0] += int(sample.shape[0])

    handle = sd.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


def check_result(result: EditResult, image: Tensor, name: str) -> EditResult:
    """A method's result must match the source's shape and be finite."""
    if not isinstance(result, EditResult):
        raise TypeError(f"{name} returned {type(result).__name__}, expected an EditResult")
    images = {"edited": result.edited, "reconstruction": result.reconstruction}
    for what, tensor in images.items():
        if tensor is None and what == "reconstruction":
            continue
        if not isinstance(tensor, Tensor) or tuple(tensor.shape) != tuple(image.shape):
            shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ValueError(f"{name}: {what} has shape {shape}, expected {tuple(image.shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise FloatingPointError(f"{name}: the {what} image is not finite")
    if int(result.unet_evals) < 0:
        raise ValueError(f"{name}: a negative UNet evaluation count {result.unet_evals}")
    return result


def discover(
    builtin: list[EditMethod] | None = None, *, warn: Callable[[str], None] = print
) -> dict[str, EditMethod]:
    """The built-in baselines plus every method registered under ``diffrepro.editing``."""
    if builtin is None:
        from diffrepro.core.compare.baselines import baseline_methods

        builtin = baseline_methods()
    return registered_methods(EDITING_GROUP, EditMethod, builtin, warn, "editing")


def registered_methods(
    group: str, kind: type, builtin: list, warn: Callable[[str], None], what: str
) -> dict[str, object]:
    """``builtin`` plus every ``kind`` registered under the entry-point ``group``.

    A package whose entry point fails to load, an object of another type and a name already
    taken are skipped with one warning each, so one broken install does not hide the others.
    """
    methods = {m.name: m for m in builtin}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            found = ep.load()()
        except Exception as err:  # one broken package must not hide the others
            warn(f"skipping {what} package {ep.name!r}: it failed to load ({err})")
            continue
        for method in found:
            if not isinstance(method, kind):
                warn(f"skipping {ep.name!r}: it registered a {type(method).__name__}")
            elif method.name in methods:
                warn(f"skipping {ep.name!r}'s {method.name!r}: the name is already taken")
            else:
                methods[method.name] = method
    return methods


def is_registered(slug: str, group: str) -> bool:
    """Whether a package registered the entry point ``slug`` in ``group``."""
    return any(ep.name == slug for ep in entry_points(group=group))


def select(methods: dict[str, object], names: list[str] | None) -> list:
    """The named methods (of any kind) in the given order (all when ``names`` is empty)."""
    if not names:
        return list(methods.values())
    unknown = [n for n in names if n not in methods]
    if unknown:
        raise ValueError(
            f"--methods: {', '.join(unknown)} not installed (installed: {', '.join(methods)})"
        )
    return [methods[n] for n in dict.fromkeys(names)]
