"""The restoration contract every method follows (``diffrepro compare restoration``).

A method is a :class:`RestorationMethod`: a name, a title and a ``restore`` function::

    def restore(base: PixelDiffusion, problem: InpaintingProblem, *, seed: int,
                steps: int) -> RestorationResult

``base`` is the shared pixel DDPM (the zoo's ``emoji-ddpm``, an ADM UNet with its schedule);
a method that trains (ADIR's adaptation) works on a copy and never changes ``base``. A method
with its own network (SDM's generator) loads it itself and may ignore ``base``. ``problem``
holds the measurement only: the known pixels ``measurement`` = ``mask ⊙ (x + σ n)`` (zero in
the hole), the ``mask`` (1 = known), the noise level ``sigma`` and a ``corpus`` of clean images
the method may use (retrieval, adaptation) that never contains the test image. ``seed`` seeds
every random draw (the same seed gives the same restoration); ``steps`` is the sampler's step
count, which a method maps onto its own grid or ignores (SDM's few iterations). It returns the
restored image (1, 3, H, W) in [-1, 1] and the number of network evaluations it took (batch
rows of every forward call of a denoiser or generator, adaptation steps included; count them
with :func:`count_evals`).

Paper packages register a function returning their methods in the entry-point group
``diffrepro.restoration``::

    [project.entry-points."diffrepro.restoration"]
    adir = "diffrepro.adir.compare:restoration_methods"

The module must import cheaply; :func:`discover_restorers` skips a package whose entry point
fails to load and says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

RESTORATION_GROUP = "diffrepro.restoration"


@dataclass(frozen=True)
class InpaintingProblem:
    """One noisy inpainting measurement; tensors (1, C, H, W), images in [-1, 1]."""

    measurement: Tensor
    mask: Tensor
    sigma: float
    corpus: Tensor

    def residual(self, restored: Tensor) -> float:
        """RMS of ``mask ⊙ (restored - measurement)`` over the known pixels."""
        known = self.mask.expand_as(restored)
        diff = (restored - self.measurement) * known
        return float(diff.pow(2).sum() / known.sum().clamp_min(1)) ** 0.5


@dataclass(frozen=True)
class RestorationResult:
    restored: Tensor
    network_evals: int


RestoreFn = Callable[..., RestorationResult]


@dataclass(frozen=True)
class RestorationMethod:
    """One restoration method: ``name`` is its column in the table (lower case, no spaces)."""

    name: str
    title: str
    restore: RestoreFn
    package: str = "diffrepro-core"

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name) or self.name != self.name.lower():
            raise ValueError(f"a restoration method name must be lower case: {self.name!r}")


@contextlib.contextmanager
def count_evals(network: nn.Module) -> Iterator[list[int]]:
    """Count the batch rows of every forward call of ``network`` inside the block."""
    count = [0]

    def hook(module, args, kwargs):
        first = args[0] if args else next(iter(kwargs.values()))
        count[0] += int(first.shape[0])

    handle = network.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


def check_restoration(result: RestorationResult, problem: InpaintingProblem, name: str):
    """A method's result must match the measurement's shape and be finite."""
    if not isinstance(result, RestorationResult):
        raise TypeError(f"{name} returned {type(result).__name__}, expected a RestorationResult")
    shape = tuple(problem.measurement.shape)
    if not isinstance(result.restored, Tensor) or tuple(result.restored.shape) != shape:
        got = getattr(result.restored, "shape", type(result.restored).__name__)
        raise ValueError(f"{name}: the restored image has shape {tuple(got)}, expected {shape}")
    if not bool(torch.isfinite(result.restored).all()):
        raise FloatingPointError(f"{name}: the restored image is not finite")
    if int(result.network_evals) < 0:
        raise ValueError(f"{name}: a negative evaluation count {result.network_evals}")
    return result


def discover_restorers(
    builtin: list[RestorationMethod] | None = None, *, warn: Callable[[str], None] = print
) -> dict[str, RestorationMethod]:
    """The built-in baselines plus every method registered under ``diffrepro.restoration``."""
    if builtin is None:
        from diffrepro.core.compare.restoration_baselines import restoration_baselines

        builtin = restoration_baselines()
    from diffrepro.core.compare.contract import registered_methods

    return registered_methods(RESTORATION_GROUP, RestorationMethod, builtin, warn, "restoration")
