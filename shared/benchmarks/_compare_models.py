"""Shared driver of the model benchmarks: ours against diffusers' at one matched configuration.

Each case names its variants (``diffusers`` is the reference); every variant is a module and two
callables, the forward (under ``torch.no_grad``) and the forward+backward (a mean-square loss of
the output, then ``backward``). Parameter counts are asserted equal before any timing. Times come
from :func:`diffrepro.core.benchmark.compare` (interleaved repeats, median ratio and its spread);
peak memory from :func:`diffrepro.core.benchmark.peak_memory` (one extra run per variant).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Callable

import torch

from diffrepro.core.benchmark import assert_same_parameters, compare, peak_memory


@dataclasses.dataclass
class Variant:
    module: torch.nn.Module
    forward: Callable[[], torch.Tensor]


def options(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved timing repeats")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smallest cases")
    parser.add_argument("--device", default="cpu", help="cpu (the GPU bench is bench_gpu.py)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.quick:
        args.repeat = min(args.repeat, 3)
    return args


def _fwd(variant: Variant) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            variant.forward()

    return run


def _fwd_bwd(variant: Variant) -> Callable[[], None]:
    def run() -> None:
        variant.forward().square().mean().backward()
        variant.module.zero_grad(set_to_none=True)

    return run


def case_rows(
    case: str,
    variants: dict[str, Variant],
    *,
    repeat: int,
    backward: bool = True,
    device: str = "cpu",
) -> list[dict]:
    """Rows of one case: per variant, fwd (and fwd+bwd) time, ratio to diffusers, peak memory."""
    reference = variants["diffusers"].module
    params = {n: assert_same_parameters(v.module, reference, case) for n, v in variants.items()}
    modes = {"fwd": _fwd}
    if backward:
        modes["fwd_bwd"] = _fwd_bwd
    rows = {name: {"case": case, "variant": name, "params": params[name]} for name in variants}
    for mode, make in modes.items():
        fns = {name: make(v) for name, v in variants.items()}
        timed = compare(fns, reference="diffusers", device=device, warmup=1, repeat=repeat)
        peaks = {name: peak_memory(fn, device=device) for name, fn in fns.items()}
        for name, t in timed.items():
            rows[name].update(
                {
                    f"{mode}_ms": 1e3 * t["time_s"],
                    f"{mode}_vs_diffusers": t["ratio"],
                    f"{mode}_ratio_range": f"{t['ratio_min']:.3f}-{t['ratio_max']:.3f}",
                    f"{mode}_peak_mib": peaks[name] / 2**20,
                    f"{mode}_mem_vs_diffusers": peaks[name] / max(peaks["diffusers"], 1),
                }
            )
        print(case, mode, {n: round(t["ratio"], 3) for n, t in timed.items()}, flush=True)
    return list(rows.values())


def channels_last_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` with channels-last weights (for the channels-last variants)."""
    return copy.deepcopy(module).to(memory_format=torch.channels_last)


def to_cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)
