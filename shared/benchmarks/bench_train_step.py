"""One training step of each zoo entry, contiguous against channels-last layout.

A step is what ``diffrepro.core.train`` does per batch: the entry's own loss function (from
``diffrepro.core.zoo``) on a batch of its recipe's size, backward, gradient clipping at 1.0 and an
AdamW update. Models are built from the zoo's configs with random weights and the batches are
random tensors of the real shapes (no zoo model is built or loaded; emoji-t2i's text encoder
gets a 1,000-token vocabulary instead of the caption vocabulary, which changes only its
embedding table). ``cl`` is ``TrainConfig(channels_last=True)``'s layout: weights and 4-D
float inputs channels-last. Ratios are cl / contiguous per interleaved repeat.

Run: ``python shared/benchmarks/bench_train_step.py [--repeat 5] [--quick]``
(writes runs/bench/train_step.{json,md}).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable

import torch
from _compare_models import options

from diffrepro.core.benchmark import compare, parameter_count, peak_memory, write_results
from diffrepro.core.models.autoencoder_kl import AutoencoderKL
from diffrepro.core.models.clip import CLIPTextModel
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER
from diffrepro.core.models.unet import UNetModel
from diffrepro.core.speedups import to_channels_last
from diffrepro.core.zoo.ddpm import DDPM_UNET, DDPMRecipe, DiffusionFlags, ddpm_loss
from diffrepro.core.zoo.judge import EmojiJudge, JudgeConfig, JudgeRecipe, judge_loss
from diffrepro.core.zoo.t2i import MAX_TOKENS, T2I_CONFIG, T2IRecipe, T2ITrainer, t2i_loss
from diffrepro.core.zoo.vae import VAE_CONFIG, VAERecipe, vae_loss

Case = tuple[torch.nn.Module, Callable, Callable[[], object]]


def vae_case() -> Case:
    recipe = VAERecipe()
    x = torch.rand(recipe.batch_size, 3, 32, 32) * 2 - 1
    return AutoencoderKL(VAE_CONFIG), vae_loss(recipe.kl_weight), lambda: x


def t2i_case() -> Case:
    recipe = T2IRecipe()
    text = dataclasses.replace(T2I_CONFIG.text, vocab_size=1000)
    model = T2ITrainer(UNet2DConditionModel(T2I_CONFIG.unet), CLIPTextModel(text))
    b = recipe.batch_size
    mean, std = torch.randn(b, 4, 8, 8), torch.rand(b, 4, 8, 8) * 0.1
    ids = torch.randint(0, 1000, (b, MAX_TOKENS))
    loss = t2i_loss(SD1_SCHEDULER.schedule(), ids[0], recipe.uncond_prob, 1.0)
    return model, loss, lambda: (mean, std, ids)


def judge_case() -> Case:
    config, recipe = JudgeConfig(), JudgeRecipe()
    b = recipe.batch_size
    x = torch.rand(b, 3, 32, 32) * 2 - 1
    batch = (
        x,
        torch.randint(0, config.num_emoji, (b,)),
        torch.randint(0, config.num_classes, (b,)),
    )
    in_train = torch.ones(b, dtype=torch.bool)
    return EmojiJudge(config), judge_loss(recipe), lambda: (*batch, in_train)


def ddpm_case(conditional: bool) -> Callable[[], Case]:
    def build() -> Case:
        config = dataclasses.replace(DDPM_UNET, num_classes=8 if conditional else None)
        b = DDPMRecipe().batch_size
        x, y = torch.rand(b, 3, 32, 32) * 2 - 1, torch.randint(0, 8, (b,))
        loss = ddpm_loss(DiffusionFlags().schedule(), conditional)
        return UNetModel(config), loss, lambda: (x, y)

    return build


CASES = {
    "emoji-vae": vae_case,
    "emoji-t2i": t2i_case,
    "emoji-judge": judge_case,
    "emoji-ddpm": ddpm_case(False),
    "emoji-ddpm-cond": ddpm_case(True),
}


def _layout(batch, cl: bool):
    if not cl:
        return batch
    if isinstance(batch, torch.Tensor):
        return to_channels_last(batch)
    return tuple(to_channels_last(b) if isinstance(b, torch.Tensor) else b for b in batch)


def _batch_size(batch) -> int:
    return len(batch if isinstance(batch, torch.Tensor) else batch[0])


def step_fn(model: torch.nn.Module, loss_fn, batch_at, cl: bool) -> Callable[[], None]:
    if cl:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batch = _layout(batch_at(), cl)

    def step() -> None:
        torch.manual_seed(0)  # the same timesteps / noise in both layouts
        loss_fn(model, batch).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    args = options(__doc__.splitlines()[0])
    start = time.perf_counter()
    rows = []
    for name, build in CASES.items():
        torch.manual_seed(0)
        model, loss_fn, batch_at = build()
        fns = {
            "contiguous": step_fn(model, loss_fn, batch_at, cl=False),
            "channels_last": step_fn(copy.deepcopy(model), loss_fn, batch_at, cl=True),
        }
        timed = compare(fns, reference="contiguous", repeat=args.repeat)
        peaks = {k: peak_memory(fn) for k, fn in fns.items()}
        for variant, t in timed.items():
            rows.append(
                {
                    "entry": name,
                    "layout": variant,
                    "params": parameter_count(model),
                    "batch": len(batch_at()[0])
                    if isinstance(batch_at(), tuple)
                    else len(batch_at()),
                    "step_ms": 1e3 * t["time_s"],
                    "vs_contiguous": t["ratio"],
                    "ratio_range": f"{t['ratio_min']:.3f}-{t['ratio_max']:.3f}",
                    "peak_mib": peaks[variant] / 2**20,
                }
            )
        print(name, {k: round(t["ratio"], 3) for k, t in timed.items()}, flush=True)
    notes = (
        f"fp32 on CPU, {torch.get_num_threads()} thread(s); one AdamW step at the recipe's batch "
        "size; medians of interleaved repeats; peak memory = peak tensor memory allocated during "
        f"one step (torch.profiler memory events). Total {time.perf_counter() - start:.0f} s."
    )
    print(write_results("train_step", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
