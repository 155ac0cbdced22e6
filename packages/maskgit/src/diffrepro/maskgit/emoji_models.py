"""The emoji tokenizer + transformer pair: zoo entries ``maskgit-emoji-tokenizer`` and
``maskgit-emoji-transformer`` (trained on the core emoji train split, class-conditional on its
coarse classes, with the ``demo`` preset), and the same builds without the zoo.

Where the zoo (``diffrepro.core.zoo``) is installed, :func:`emoji_pair` loads both through it
(built at first use, cached). Otherwise it builds them with the same functions into this
package's cache folder (``$XDG_CACHE_HOME/diffrepro/maskgit/<key>``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from diffrepro.maskgit.config import DEMO, MaskGitConfig
from diffrepro.maskgit.data import emoji_dataset
from diffrepro.maskgit.loading import load_tokenizer, load_transformer
from diffrepro.maskgit.metrics import codebook_usage, reconstruction_metrics
from diffrepro.maskgit.train import train_tokenizer, train_transformer

TOKENIZER = "maskgit-emoji-tokenizer"
TRANSFORMER = "maskgit-emoji-transformer"
RECIPE = {"data": "core emoji, train split, coarse classes", "image_size": 32, "seed": 0}


def emoji_config(num_classes: int) -> MaskGitConfig:
    return DEMO.with_classes(num_classes)


def build_tokenizer(out_dir: Path, device: str = "cpu") -> dict[str, Any]:
    images, labels, classes = emoji_dataset(DEMO.image_size, "train")
    cfg = emoji_config(len(classes))
    start = time.perf_counter()
    tok = train_tokenizer(cfg, images, out_dir / "train", device=device)
    shutil.copy(out_dir / "train" / "tokenizer.safetensors", out_dir / "tokenizer.safetensors")
    facts = {"train_seconds": round(time.perf_counter() - start, 1), "images": len(images)}
    held, _, _ = emoji_dataset(DEMO.image_size, "heldout")
    facts.update(reconstruction_metrics(tok, held))
    facts.update(codebook_usage(tok, images))
    return facts


def build_transformer(out_dir: Path, tokenizer_dir: Path, device: str = "cpu") -> dict[str, Any]:
    tok = load_tokenizer(tokenizer_dir / "tokenizer.safetensors")
    images, labels, classes = emoji_dataset(DEMO.image_size, "train")
    cfg = dataclasses.replace(emoji_config(len(classes)), tokenizer=tok.config)
    start = time.perf_counter()
    train_transformer(cfg, tok, images, labels, out_dir / "train", device=device)
    shutil.copy(out_dir / "train" / "transformer.safetensors", out_dir / "transformer.safetensors")
    return {
        "train_seconds": round(time.perf_counter() - start, 1),
        "images": len(images),
        "classes": len(classes),
    }


def open_tokenizer(folder: Path, device: str = "cpu"):
    return load_tokenizer(Path(folder) / "tokenizer.safetensors").to(device)


def open_transformer(folder: Path, device: str = "cpu"):
    return load_transformer(Path(folder) / "transformer.safetensors").to(device)


def zoo_entries() -> list:
    """The two zoo entries (entry point ``diffrepro.zoo``); needs ``diffrepro.core.zoo``."""
    from diffrepro.core import emoji
    from diffrepro.core.zoo import ZooEntry

    config, version = dataclasses.asdict(DEMO), emoji.DATA_VERSION
    return [
        ZooEntry(
            name=TOKENIZER,
            summary="MaskGIT VQGAN tokenizer (f = 4, 128 codes) on 32 px emoji",
            config=config,
            recipe=RECIPE,
            build=lambda entry, ctx: build_tokenizer(ctx.out_dir, ctx.device),
            open=open_tokenizer,
            data_version=version,
            card="Reconstruction + VQ + entropy loss only (no GAN or perceptual term).",
        ),
        ZooEntry(
            name=TRANSFORMER,
            summary="MaskGIT bidirectional transformer (3 layers, 96 wide) on emoji tokens",
            config=config,
            recipe=RECIPE,
            build=lambda entry, ctx: build_transformer(
                ctx.out_dir, ctx.requires[TOKENIZER], ctx.device
            ),
            open=open_transformer,
            requires=(TOKENIZER,),
            data_version=version,
            card="Class-conditional on the emoji coarse classes; cosine masking, label "
            "smoothing 0.1, AdamW (0.9, 0.96), wd 0.045.",
        ),
    ]


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    key = json.dumps({"config": dataclasses.asdict(DEMO), "recipe": RECIPE}, sort_keys=True)
    return Path(base) / "diffrepro" / "maskgit" / hashlib.sha256(key.encode()).hexdigest()[:12]


def _local_build(name: str, build, device: str) -> Path:
    folder = _cache_root() / name
    if (folder / "done.json").is_file():
        return folder
    tmp = folder.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    facts = build(tmp)
    (tmp / "done.json").write_text(json.dumps(facts, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def emoji_pair(device: str = "cpu") -> tuple[Any, Any, str]:
    """(transformer, tokenizer, where they came from) for the emoji demo."""
    try:
        from diffrepro.core import zoo
    except ImportError:
        zoo = None
    if zoo is not None:
        model, tok = zoo.load(TRANSFORMER, device=device), zoo.load(TOKENIZER, device=device)
        logs = zoo.path(TRANSFORMER, build=False) / "train" / "tb"
        return model, tok, f"zoo entries {TRANSFORMER} + {TOKENIZER} (TensorBoard logs: {logs})"
    tok_dir = _local_build(TOKENIZER, lambda d: build_tokenizer(d, device), device)
    tr_dir = _local_build(TRANSFORMER, lambda d: build_transformer(d, tok_dir, device), device)
    return (
        open_transformer(tr_dir, device),
        open_tokenizer(tok_dir, device),
        f"local builds in {tr_dir.parent} (the core zoo is not installed; TensorBoard logs "
        "in */train/tb)",
    )


def facts(folder: Path) -> dict:
    path = Path(folder) / "done.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def masked_accuracy(
    model, codes: torch.Tensor, labels: torch.Tensor, ratio: float, generator=None
) -> float:
    """Top-1 accuracy at exactly round(ratio·N) randomly masked positions (argmax of [0, K))."""
    mc = model.config
    b, n = codes.shape
    k = max(1, round(ratio * n))
    ranks = torch.rand(b, n, generator=generator).argsort(1).argsort(1)
    masked = ranks < k
    tokens = torch.cat(
        [
            mc.class_id(labels)[:, None],
            torch.where(masked, torch.full_like(codes, mc.mask_id), codes),
        ],
        dim=1,
    )
    with torch.no_grad():
        pred = model(tokens)[:, 1:, : mc.codebook_size].argmax(-1)
    return float((pred[masked] == codes[masked]).double().mean())
