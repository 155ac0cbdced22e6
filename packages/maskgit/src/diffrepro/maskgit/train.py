"""Training the tokenizer and the transformer on the core training loop (progress, TensorBoard,
atomic checkpoints, exact resume). Both return the trained network (EMA weights when on) and
write it as ``tokenizer.safetensors`` / ``transformer.safetensors`` in ``out_dir``."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch

from diffrepro.core.train import TrainConfig, latest_checkpoint, train
from diffrepro.maskgit.config import MaskGitConfig
from diffrepro.maskgit.loading import save_model
from diffrepro.maskgit.losses import masked_token_loss, vq_losses
from diffrepro.maskgit.masking import mask_inputs
from diffrepro.maskgit.progress import with_progress
from diffrepro.maskgit.transformer import MaskGitTransformer
from diffrepro.maskgit.vqgan import VQGAN


class _Images(torch.utils.data.Dataset):
    """Images (N, 3, H, W) in [0, 1], randomly flipped when ``flip``."""

    def __init__(self, images: torch.Tensor, flip: bool) -> None:
        self.images, self.flip = images, flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i]
        return x.flip(-1) if self.flip and bool(torch.rand(()) < 0.5) else x


class _Codes(torch.utils.data.Dataset):
    def __init__(self, codes: torch.Tensor, labels: torch.Tensor) -> None:
        self.codes, self.labels = codes, labels

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.codes[i], self.labels[i]


def _final(model: torch.nn.Module, result) -> torch.nn.Module:
    net = copy.deepcopy(model)
    if result.ema is not None:
        result.ema.copy_to(net)
    return net.eval()


def _done(out_dir: Path, resume: bool) -> int:
    """The step a resumed run starts from."""
    folder = latest_checkpoint(out_dir) if resume else None
    return int(folder.name.split("_")[1]) if folder is not None else 0


def _check_images(images: torch.Tensor, size: int) -> None:
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise ValueError(
            f"training images must be (N, 3, {size}, {size}), got {tuple(images.shape)}"
        )
    if float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError("training images must lie in [0, 1]")


def train_tokenizer(
    cfg: MaskGitConfig,
    images: torch.Tensor,
    out_dir: Path,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    resume: bool = True,
) -> VQGAN:
    """Reconstruction + VQ (+ the official entropy loss) training of a fresh tokenizer."""
    _check_images(images, cfg.image_size)
    t, tk = cfg.train_tokenizer, cfg.tokenizer
    torch.manual_seed(seed)
    model = VQGAN(tk)

    def loss_fn(net, x):
        terms = vq_losses(
            net(x),
            x,
            commitment=tk.commitment_cost,
            entropy_ratio=tk.entropy_loss_ratio,
            entropy_temperature=tk.entropy_temperature,
            reconstruction=t.reconstruction,
        )
        return terms["total"]

    loop = TrainConfig(
        steps=t.steps,
        batch_size=t.batch_size,
        lr=t.lr,
        betas=t.betas,
        ema_decay=t.ema_decay,
        grad_clip=None,
        log_every=t.log_every,
        checkpoint_every=t.checkpoint_every,
        seed=seed,
    )
    loss_fn = with_progress(loss_fn, t.steps, _done(out_dir, resume), t.log_every, "tokenizer")
    result = train(
        model,
        loss_fn,
        _Images(images, t.flip),
        loop,
        out_dir,
        model_config=dataclasses.asdict(tk),
        resume=resume,
        device=device,
    )
    net = _final(model, result).cpu()
    save_model(
        Path(out_dir) / "tokenizer.safetensors",
        net,
        "tokenizer",
        {"image_size": cfg.image_size, "steps": result.step},
    )
    return net


@torch.no_grad()
def encode_dataset(
    tokenizer: VQGAN, images: torch.Tensor, flip: bool, batch: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (N or 2N, h·w) of the images (and of their mirror images when ``flip``), with the
    index of the source image of each row."""
    tokenizer.eval()
    views = [images, images.flip(-1)] if flip else [images]
    codes, index = [], []
    for view in views:
        for start in range(0, len(view), batch):
            codes.append(tokenizer.encode(view[start : start + batch]).flatten(1))
        index.append(torch.arange(len(view)))
    return torch.cat(codes), torch.cat(index)


def transformer_loss(cfg: MaskGitConfig):
    """loss_fn(model, (codes, labels)) of masked visual token modelling."""
    t, m = cfg.train, cfg.transformer

    def loss_fn(net, batch):
        codes, labels = batch
        inputs, targets, masked = mask_inputs(
            codes,
            labels,
            codebook_size=m.codebook_size,
            mask_id=m.mask_id,
            method=t.mask_schedule,
            cond_drop=t.cond_drop,
        )
        return masked_token_loss(
            net(inputs), targets, masked, smoothing=t.label_smoothing, masked_only=t.masked_only
        )

    return loss_fn


def train_transformer(
    cfg: MaskGitConfig,
    tokenizer: VQGAN,
    images: torch.Tensor,
    labels: torch.Tensor,
    out_dir: Path,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    resume: bool = True,
) -> MaskGitTransformer:
    """MVTM training of a fresh class-conditional transformer on the tokenizer's codes."""
    _check_images(images, cfg.image_size)
    m = cfg.transformer
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if int(labels.min()) < 0 or int(labels.max()) >= m.num_classes:
        raise ValueError(f"labels must lie in [0, {m.num_classes}) for this transformer")
    codes, index = encode_dataset(tokenizer.to(device), images.to(device), cfg.train.flip)
    torch.manual_seed(seed)
    model = MaskGitTransformer(m)
    t = cfg.train
    loop = TrainConfig(
        steps=t.steps,
        batch_size=t.batch_size,
        lr=t.lr,
        betas=t.betas,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps,
        grad_clip=t.grad_clip,
        ema_decay=t.ema_decay,
        log_every=t.log_every,
        checkpoint_every=t.checkpoint_every,
        seed=seed,
    )
    data = _Codes(codes.cpu(), labels[index].cpu())
    loss_fn = with_progress(
        transformer_loss(cfg), t.steps, _done(out_dir, resume), t.log_every, "transformer"
    )
    result = train(
        model,
        loss_fn,
        data,
        loop,
        out_dir,
        model_config=dataclasses.asdict(m),
        resume=resume,
        device=device,
    )
    net = _final(model, result).cpu()
    save_model(
        Path(out_dir) / "transformer.safetensors",
        net,
        "transformer",
        {
            "image_size": cfg.image_size,
            "steps": result.step,
            "final_loss": result.losses[-1] if result.losses else None,
        },
    )
    return net
