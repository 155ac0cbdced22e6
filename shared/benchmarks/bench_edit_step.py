"""One EDICT and one pix2pix-zero editing step against one plain DDIM step with CFG.

The model is the zoo's emoji-t2i architecture (UNet, VAE, text encoder at the zoo's sizes) with
random weights; batch 1, 8x8 latents, fp32 on CPU. The reference is one classifier-free-guided
DDIM step (one UNet call on a batch of 2):

- EDICT: one coupled denoising step (Eq. 14 + mixing layer; ``diffrepro.edict.coupled``), two
  guided UNet calls, G = 3;
- pix2pix-zero: one edit with a 1-step grid (``diffrepro.pix2pix_zero.pipeline.translate``):
  the reference pass storing the cross-attention maps (one guided call through the math
  attention backend), then the edit step: the cross-attention loss, its gradient w.r.t. the
  latent and the guided call at the moved latent.

Run: ``python shared/benchmarks/bench_edit_step.py [--repeat 5]``
(writes runs/bench/edit_step.{json,md}).
"""

from __future__ import annotations

import dataclasses
import time

import torch
from _compare_models import options

from diffrepro.core.benchmark import compare, peak_memory, write_results
from diffrepro.core.models.autoencoder_kl import AutoencoderKL
from diffrepro.core.models.clip import CLIPTextModel
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.models.stable_diffusion import SD1_SCHEDULER, StableDiffusion
from diffrepro.core.samplers import cfg_model, sample_ddim
from diffrepro.core.tokenizer import CLIPTokenizer, minimal_vocab
from diffrepro.core.zoo.t2i import T2I_CONFIG
from diffrepro.core.zoo.vae import VAE_CONFIG
from diffrepro.edict import coupled
from diffrepro.edict import pipeline as edict
from diffrepro.edict.config import EDICTConfig
from diffrepro.pix2pix_zero import pipeline as p2p
from diffrepro.pix2pix_zero.config import PRESETS as P2P_PRESETS

WORDS = ("an", "emoji", "of", "a", "cat", "dog", "face")


def zoo_sized_sd() -> StableDiffusion:
    vocab, merges = minimal_vocab(list(WORDS))
    text = dataclasses.replace(T2I_CONFIG.text, vocab_size=len(vocab))
    torch.manual_seed(0)
    sd = StableDiffusion(
        UNet2DConditionModel(T2I_CONFIG.unet).eval(),
        AutoencoderKL(VAE_CONFIG).eval(),
        CLIPTextModel(text).eval(),
        CLIPTokenizer(vocab, merges, max_length=text.max_position_embeddings),
        SD1_SCHEDULER,
    )
    return sd


def ddim_step(sd: StableDiffusion, z: torch.Tensor, guidance: float):
    cond, uncond = sd.encode_prompt(["an emoji of a cat"]), sd.encode_prompt([""])
    model = cfg_model(sd.unet, cond, uncond, guidance)
    grid = sd.scheduler.grid(50)[:1]

    def run() -> None:
        with torch.no_grad():
            sample_ddim(model, z, sd.schedule, timesteps=grid, prediction=sd.scheduler.prediction)

    return run


def edict_step(sd: StableDiffusion, z: torch.Tensor):
    cfg = EDICTConfig(dtype="float32")
    eps = edict.noise_predictor(sd, "an emoji of a dog", 1, cfg)
    step = edict.coupled_steps(sd, cfg)[0]

    def run() -> None:
        with torch.no_grad():
            coupled.denoise_step(eps, z, z.clone(), step, cfg.p, True)

    return run


def pix2pix_zero_step(sd: StableDiffusion, z: torch.Tensor):
    base = P2P_PRESETS["demo"]
    cfg = dataclasses.replace(base, edit=dataclasses.replace(base.edit, num_steps=1))
    with torch.no_grad():
        cond = sd.encode_prompt(["an emoji of a cat"])
    direction = torch.randn_like(cond) * 0.1

    def run() -> None:
        p2p.translate(sd, z, ["an emoji of a cat"], direction, cfg)

    return run, cfg.edit.guidance_scale


def main() -> None:
    args = options(__doc__.splitlines()[0])
    start = time.perf_counter()
    sd = zoo_sized_sd()
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    p2p_run, p2p_scale = pix2pix_zero_step(sd, z)
    fns = {
        "ddim step (CFG 3)": ddim_step(sd, z, 3.0),
        "edict step (G 3)": edict_step(sd, z),
        f"ddim step (CFG {p2p_scale:g})": ddim_step(sd, z, p2p_scale),
        "pix2pix-zero step": p2p_run,
    }
    timed = compare(fns, reference="ddim step (CFG 3)", repeat=args.repeat)
    rows = []
    for name, fn in fns.items():
        t = timed[name]
        rows.append(
            {
                "step": name,
                "ms": 1e3 * t["time_s"],
                "vs_ddim_step": t["ratio"],
                "ratio_range": f"{t['ratio_min']:.3f}-{t['ratio_max']:.3f}",
                "peak_mib": peak_memory(fn) / 2**20,
            }
        )
        print(rows[-1], flush=True)
    notes = (
        "emoji-t2i-sized SD stack, random weights, batch 1, fp32 CPU, "
        f"{torch.get_num_threads()} thread(s). Expected: EDICT = 2 guided UNet calls (about 2x a "
        "DDIM step); pix2pix-zero = reference call + loss forward/backward + guided call. "
        f"Peak memory from torch.profiler memory events. Total {time.perf_counter() - start:.0f} s."
    )
    print(write_results("edit_step", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
