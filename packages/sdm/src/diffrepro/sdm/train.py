"""SDM training (spec §3.4): unrolled predict → pick → sample with decoupled losses.

Per batch: draw masks, start from (x ⊙ m_0, m_0, u_0 = 1 - m_0) at schedule position 0, and
unroll ``unroll`` iterations. Each iteration's prediction is scored on the composite
x ⊙ m_0 + μ ⊙ (1 - m_0) by λ_adv · non-saturating GAN + λ_pcp · perceptual, and σ by
λ_nll · discretised Gaussian NLL (mean detached) of the same composite on all pixels, so σ is
driven to 0 on known pixels (as the v1 reading note describes) and learns the error in the
hole. Between iterations the state advances with ``decoding.advance`` to a randomly drawn
later schedule position of a T = ``unroll_iterations`` schedule, without gradient (how the
iterations enter training is unknown; this is our documented choice). The discriminator sees
real images and the last iteration's composites, with lazy R1.

Checkpoints and resume follow the core training loop's contract (see ``resume``): every random
draw of step ``s`` (images, masks, unroll positions, sampling noise) is seeded from
``(seed, s)``, so a killed run resumed from its last checkpoint equals an uninterrupted one.

Divergence is an error, never a result: each network's gradient is clipped to the global norm
``train.grad_clip``; a non-finite loss or gradient stops training with one FloatingPointError
naming the step and term, and a checkpoint is only written when every weight is finite.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from diffrepro.core.checkpoints import load_state_dict, save_checkpoint
from diffrepro.core.config import save_config
from diffrepro.core.nn import EMA
from diffrepro.core.progress import ProgressLines
from diffrepro.core.train import check_run_dir, seed_for_micro_batch
from diffrepro.sdm.adversarial import discriminator_loss, generator_loss, r1_penalty
from diffrepro.sdm.config import SDMConfig
from diffrepro.sdm.decoding import advance, compose, initial_state
from diffrepro.sdm.discriminator import Discriminator
from diffrepro.sdm.likelihood import variance_nll
from diffrepro.sdm.masks import assert_mask, generate_masks
from diffrepro.sdm.network import SDMNetwork
from diffrepro.sdm.perceptual import PerceptualLoss
from diffrepro.sdm.resume import restore_state, save_state
from diffrepro.sdm.schedule import still_unknown

BatchSource = Callable[[int, torch.Generator], torch.Tensor]  # (count, generator) → images


@dataclass
class Models:
    generator: SDMNetwork
    discriminator: Discriminator
    perceptual: PerceptualLoss
    ema: EMA


@dataclass
class TrainResult:
    generator: SDMNetwork  # with the EMA weights
    history: list[dict[str, float]] = field(default_factory=list)


def build_models(
    cfg: SDMConfig, device: torch.device, init_generator: dict[str, torch.Tensor] | None = None
) -> Models:
    generator = SDMNetwork(cfg.network)
    if init_generator is not None:
        load_state_dict(generator, init_generator, source="the initial generator checkpoint")
    generator = generator.to(device)
    discriminator = Discriminator(cfg.discriminator).to(device)
    perceptual = PerceptualLoss(cfg.train.resnet50_weights or None).to(device)
    return Models(generator, discriminator, perceptual, EMA(generator, cfg.train.ema_decay))


def unroll_positions(cfg: SDMConfig, rng: np.random.Generator) -> list[int]:
    """Schedule steps t (of T = unroll_iterations) at which each unrolled iteration starts."""
    later = rng.choice(
        np.arange(1, cfg.train.unroll_iterations), size=cfg.train.unroll - 1, replace=False
    )
    return [0, *sorted(int(t) for t in later)]


def generator_losses(
    models: Models,
    cfg: SDMConfig,
    image: torch.Tensor,
    mask0: torch.Tensor,
    rng: np.random.Generator,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Summed loss terms over the unrolled iterations, and the last composite."""
    total_iters = cfg.train.unroll_iterations
    x, u = initial_state(image, mask0)
    mask = mask0
    n_unknown = (1 - mask0).flatten(1).sum(1).long().tolist()
    positions = unroll_positions(cfg, rng)
    terms = {"adv": image.new_zeros(()), "pcp": image.new_zeros(()), "nll": image.new_zeros(())}
    for j, start in enumerate(positions):
        tau = torch.full((len(image),), start / total_iters, device=image.device)
        mean, sigma = models.generator(x, mask0, mask, u, tau)
        fake = compose(image, mask0, torch.ones_like(mask0), mean)
        terms["adv"] = terms["adv"] + generator_loss(models.discriminator, fake, mask0)
        terms["pcp"] = terms["pcp"] + models.perceptual(fake, image)
        terms["nll"] = terms["nll"] + variance_nll(image, fake, sigma)
        if j + 1 < len(positions):
            with torch.no_grad():
                schedule, target = cfg.decode.schedule, positions[j + 1]
                left = [still_unknown(n, schedule, target, total_iters) for n in n_unknown]
                unknown_now = (1 - mask).flatten(1).sum(1).long().cpu()
                counts = unknown_now - torch.tensor(left)
                step = advance(
                    image, mask0, (x, mask), (mean, sigma), counts, alpha=cfg.decode.alpha
                )
                x, mask, u = step.image, step.mask, step.uncertainty
    return terms, fake


def check_finite_loss(step: int, losses: dict[str, torch.Tensor]) -> None:
    """FloatingPointError naming the first non-finite loss term."""
    for name, value in losses.items():
        if not bool(torch.isfinite(value.detach()).all()):
            raise FloatingPointError(
                f"sdm train diverged: loss {name} is {float(value.detach())} at step {step}; "
                "nothing was saved for this step (lower train.lr or raise network.sigma_floor)"
            )


def check_finite_weights(state: dict[str, torch.Tensor], what: str) -> None:
    """FloatingPointError if any tensor of ``state`` holds NaN or ±inf."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise FloatingPointError(f"{what} has non-finite weights (first: {bad[0]})")


def clipped_step(
    optimizer: torch.optim.Optimizer, module: torch.nn.Module, max_norm: float, name: str, step: int
) -> None:
    """Clip ``module``'s gradient to ``max_norm`` and step; a non-finite gradient is an error."""
    norm = torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)
    if not bool(torch.isfinite(norm)):
        raise FloatingPointError(
            f"sdm train diverged: the {name} gradient is {float(norm)} at step {step}"
        )
    optimizer.step()


def step_randomness(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch / numpy / random from (seed, step); the step's mask and image generators."""
    seed_for_micro_batch(seed, step)
    sequence = np.random.SeedSequence([seed, step])
    crop_seed = int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return np.random.default_rng(sequence), torch.Generator().manual_seed(crop_seed)


def train(
    cfg: SDMConfig,
    batches: BatchSource,
    out_dir: Path,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    init_generator: dict[str, torch.Tensor] | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train (from scratch, from ``init_generator`` weights, or resumed from ``out_dir``'s latest
    checkpoint when ``resume``); writes config.json, TensorBoard logs, ``checkpoints/`` every
    ``checkpoint_every`` steps and ``generator_ema.safetensors`` (EMA weights with the config)
    at the end."""
    out_dir = Path(out_dir)
    check_run_dir(out_dir, resume)
    torch.manual_seed(seed)
    device = torch.device(device)
    models = build_models(cfg, device, init_generator)
    tc = cfg.train
    betas = (float(tc.betas[0]), float(tc.betas[1]))
    opt_g = torch.optim.Adam(models.generator.parameters(), lr=tc.lr, betas=betas, eps=1e-8)
    opt_d = torch.optim.Adam(models.discriminator.parameters(), lr=tc.lr, betas=betas, eps=1e-8)
    networks = torch.nn.ModuleDict(
        {"generator": models.generator, "discriminator": models.discriminator}
    )
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    done = restore_state(out_dir, networks, models.ema, optimizers, cfg, seed) if resume else None
    first, history = (done.step, done.history) if done is not None else (0, [])
    save_config(cfg, out_dir / "config.json")
    weights = {"adv": tc.adv_weight, "pcp": tc.perceptual_weight, "nll": tc.nll_weight}
    with SummaryWriter(str(out_dir / "tensorboard")) as writer:
        on_terminal = sys.stderr.isatty()
        lines = ProgressLines("sdm train", tc.steps) if progress and not on_terminal else None
        for step in tqdm(
            range(first + 1, tc.steps + 1),
            desc="sdm train",
            initial=first,
            total=tc.steps,
            disable=not progress or not on_terminal,
            mininterval=2,
        ):
            rng, crop_rng = step_randomness(seed, step)
            image = batches(tc.batch_size, crop_rng).to(device)
            mask0 = generate_masks(cfg.masks, tc.batch_size, rng).to(device)
            assert_mask(mask0, "training mask")
            terms, fake = generator_losses(models, cfg, image, mask0, rng)
            loss_g = sum(weights[k] * v for k, v in terms.items())
            check_finite_loss(step, {**terms, "generator": loss_g})
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            clipped_step(opt_g, models.generator, tc.grad_clip, "generator", step)
            models.ema.update(models.generator)

            loss_d = discriminator_loss(models.discriminator, image, fake, mask0)
            if step % tc.r1_interval == 0:
                loss_d = loss_d + tc.r1_interval * r1_penalty(
                    models.discriminator, image, mask0, tc.r1_gamma
                )
            check_finite_loss(step, {"discriminator": loss_d})
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            clipped_step(opt_d, models.discriminator, tc.grad_clip, "discriminator", step)

            record = {k: float(v.detach()) for k, v in terms.items()}
            record |= {"g": float(loss_g.detach()), "d": float(loss_d.detach())}
            history.append(record)
            if lines is not None:
                lines.update(step, f"loss_g {record['g']:.4f}, loss_d {record['d']:.4f}")
            if step % tc.log_every == 0 or step == tc.steps:
                for key, value in record.items():
                    writer.add_scalar(f"loss/{key}", value, step)
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                state = models.ema.state_dict()
                check_finite_weights(state, f"the EMA generator at step {step}")
                check_finite_weights(networks.state_dict(), f"the networks at step {step}")
                save_state(out_dir, step, networks, state, optimizers, history, cfg, seed)
    state = models.ema.state_dict()
    check_finite_weights(state, "the trained EMA generator")
    save_checkpoint(out_dir / "generator_ema.safetensors", state, cfg)
    generator = SDMNetwork(cfg.network).to(device)
    models.ema.copy_to(generator)
    return TrainResult(generator.eval(), history)
