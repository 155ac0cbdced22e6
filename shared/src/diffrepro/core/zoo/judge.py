"""emoji-judge: a small CNN that says which emoji (and which coarse class) an image shows.

Used by every demo to check "did the edit reach the target", for nearest-neighbour
memorisation and for a Fréchet distance in its feature space, reported as **emoji-FD** (never
FID: the network is ours, trained on 1,457 emoji renders, not Inception on ImageNet).

- ``features(x)``: (B, D) pooled penultimate features (the emoji-FD space);
- ``embed(x)``: (B, E) unit-norm identity embedding;
- ``identity_logits(x)``: (B, N) scaled cosine similarity to one learned prototype per emoji of
  :func:`diffrepro.core.emoji.emoji_set` (index = ``Emoji.index``), trained on all emoji;
- ``class_logits(x)``: (B, 8) over :data:`~diffrepro.core.emoji.COARSE_CLASSES`, trained on the
  ``train`` split only, so its accuracy on ``heldout`` emoji measures generalisation.

Inputs are RGB images in [-1, 1] on white, any size (resized to ``config.image_size``).
Training augments the renders (shift, scale, blur, noise, contrast) so that imperfect generated
images are still read.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.checkpoints import load_checkpoint, load_state_dict, save_checkpoint
from diffrepro.core.emoji import COARSE_CLASSES, DATA_VERSION, emoji_set, images, select
from diffrepro.core.metrics import feature_frechet_distance
from diffrepro.core.train import TrainConfig
from diffrepro.core.zoo.registry import BuildContext, ZooEntry
from diffrepro.core.zoo.training import fit

WEIGHTS = "judge.safetensors"


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    image_size: int = 32
    widths: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    num_emoji: int = 1457
    num_classes: int = len(COARSE_CLASSES)
    groups: int = 8
    logit_scale: float = 16.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))


@dataclasses.dataclass(frozen=True)
class JudgeRecipe:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_shift: float = 0.12  # of the image size
    scale_range: tuple[float, float] = (0.75, 1.1)
    max_noise: float = 0.15
    class_weight: float = 1.0


class EmojiJudge(nn.Module):
    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 3
        for i, width in enumerate(config.widths):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(c_in, width, 3, stride=stride, padding=1),
                nn.GroupNorm(config.groups, width),
                nn.SiLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.GroupNorm(config.groups, width),
                nn.SiLU(),
            ]
            c_in = width
        self.body = nn.Sequential(*layers)
        self.to_embed = nn.Linear(c_in, config.embed_dim)
        self.prototypes = nn.Parameter(torch.randn(config.num_emoji, config.embed_dim) * 0.1)
        self.class_head = nn.Linear(c_in, config.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.config.widths[-1]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> the judge's size and dtype."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"the judge takes (B, 3, H, W) RGB images, got {tuple(x.shape)}")
        size = self.config.image_size
        x = x.to(self.to_embed.weight)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.prepare(x)).mean(dim=(2, 3))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.to_embed(self.features(x)), dim=-1)

    def identity_logits(self, x: torch.Tensor) -> torch.Tensor:
        protos = F.normalize(self.prototypes, dim=-1)
        return self.config.logit_scale * self.embed(x) @ protos.T

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_head(self.features(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(identity logits, class logits) from one pass."""
        h = self.features(x)
        protos = F.normalize(self.prototypes, dim=-1)
        ident = self.config.logit_scale * F.normalize(self.to_embed(h), dim=-1) @ protos.T
        return ident, self.class_head(h)

    @torch.no_grad()
    def identify(self, x: torch.Tensor, k: int = 5) -> torch.Tensor:
        """(B, k) indices into ``emoji_set()`` of the most likely emoji, best first."""
        return self.identity_logits(x).topk(k, dim=-1).indices

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) coarse class indices."""
        return self.class_logits(x).argmax(dim=-1)


# -- measures built on the judge ----------------------------------------------------------------


@torch.no_grad()
def batched_features(judge: EmojiJudge, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([judge.features(x[i : i + batch]) for i in range(0, len(x), batch)])


def emoji_fd(a: torch.Tensor, b: torch.Tensor, judge: EmojiJudge) -> float:
    """emoji-FD: the Fréchet distance between judge features of image sets ``a`` and ``b``.

    Not FID (a different network and data); comparable only with other emoji-FD figures
    computed with the same judge build. Needs at least 2 images per set."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("emoji-FD needs at least 2 images in each set")
    with torch.no_grad():
        value = feature_frechet_distance(a, b, judge.features, batch_size=256)
    if not math.isfinite(value):
        raise FloatingPointError("emoji-FD is not finite")
    return value


@torch.no_grad()
def retrieval_accuracy(
    judge: EmojiJudge, x: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[int, float]:
    """Fraction of images whose target emoji index is among the judge's top-k, for each k."""
    logits = torch.cat([judge.identity_logits(x[i : i + 256]) for i in range(0, len(x), 256)])
    top = logits.topk(max(ks), dim=-1).indices.cpu()
    hits = top == targets.reshape(-1, 1).cpu()
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


# -- training -----------------------------------------------------------------------------------


def augment(x: torch.Tensor, recipe: JudgeRecipe) -> torch.Tensor:
    """Random scale and shift (white fill), blur, contrast and Gaussian noise (torch RNG)."""
    b = x.shape[0]
    lo, hi = recipe.scale_range
    scale = torch.empty(b).uniform_(lo, hi)
    shift = torch.empty(b, 2).uniform_(-recipe.max_shift, recipe.max_shift) * 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1  # white fill
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    mix = torch.rand(b, 1, 1, 1) * (torch.rand(b, 1, 1, 1) < 0.5)
    x = x + mix * (blurred - x)
    contrast = torch.empty(b, 1, 1, 1).uniform_(0.7, 1.1)
    x = 1 - (1 - x) * contrast
    noise = torch.rand(b, 1, 1, 1) * recipe.max_noise
    return x + noise * torch.randn_like(x)


class _AllEmoji(torch.utils.data.Dataset):
    def __init__(self, size: int) -> None:
        self.images, _ = images(size, "all")
        self.labels = torch.tensor([e.label for e in emoji_set()])
        self.train_mask = torch.tensor([not e.heldout for e in emoji_set()])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], i, self.labels[i], self.train_mask[i]


def judge_loss(recipe: JudgeRecipe):
    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        x, index, label, in_train = batch
        ident, cls = model(augment(x, recipe))
        loss = F.cross_entropy(ident, index)
        if in_train.any():
            loss = loss + recipe.class_weight * F.cross_entropy(cls[in_train], label[in_train])
        return loss

    return loss_fn


def build_judge(entry: ZooEntry, ctx: BuildContext) -> dict:
    config, recipe = entry.config, entry.recipe
    data = _AllEmoji(config.image_size)
    if len(data) != config.num_emoji:
        raise ValueError(f"judge config has num_emoji={config.num_emoji}, data has {len(data)}")
    torch.manual_seed(recipe.seed)
    model = EmojiJudge(config)
    train_config = TrainConfig(
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        lr_decay="cosine",
        channels_last=True,
        warmup_steps=min(100, recipe.steps),
        ema_decay=None,
        checkpoint_every=recipe.steps,
        log_every=max(1, recipe.steps // 50),
        seed=recipe.seed,
    )
    start = time.perf_counter()
    result = fit(entry.name, model, judge_loss(recipe), data, train_config, ctx)
    seconds = time.perf_counter() - start
    model.eval()
    save_checkpoint(ctx.out_dir / WEIGHTS, model, config)
    facts = {"train_seconds": round(seconds, 1), "final_loss": result.losses[-1]}
    facts.update(judge_accuracy(model, data, recipe))
    return facts


@torch.no_grad()
def judge_accuracy(model: EmojiJudge, data: _AllEmoji, recipe: JudgeRecipe) -> dict:
    """Identity top-1 on clean and augmented renders; coarse accuracy on held-out emoji."""
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(12345)
        noisy = augment(data.images, recipe)
    targets = torch.arange(len(data.images))
    clean = retrieval_accuracy(model, data.images, targets)
    aug = retrieval_accuracy(model, noisy, targets)
    held = ~data.train_mask
    pred = torch.cat([model.classify(data.images[i : i + 256]) for i in range(0, len(data), 256)])
    return {
        "identity_top1_clean": clean[1],
        "identity_top1_augmented": aug[1],
        "identity_top5_augmented": aug[5],
        "coarse_accuracy_heldout": float((pred[held] == data.labels[held]).float().mean()),
        "coarse_accuracy_train": float(
            (pred[data.train_mask] == data.labels[data.train_mask]).float().mean()
        ),
    }


def open_judge(folder: Path, device: str = "cpu") -> EmojiJudge:
    state, raw = load_checkpoint(folder / WEIGHTS)
    model = EmojiJudge(JudgeConfig(**raw))
    load_state_dict(model, state, source=str(folder / WEIGHTS))
    return model.eval().to(device)


CARD_TEXT = """
## What it is for

Demos ask it "which emoji is this?" (identity retrieval among all 1,457 emoji), "which coarse
class?" and compute **emoji-FD** (Fréchet distance of its pooled features). emoji-FD is not FID
and is only comparable between runs that use the same judge build (same cache key).

## Honest limits

Trained on renders of the emoji themselves with mild augmentation: it reads clean or slightly
degraded emoji well, but it has never seen natural images, and its verdict on images far from
the emoji domain means little. The coarse classes come from a keyword rule on the names and are
noisy; "object" is a catch-all.
"""


def judge_entry(
    name: str = "emoji-judge",
    config: JudgeConfig | None = None,
    recipe: JudgeRecipe | None = None,
) -> ZooEntry:
    return ZooEntry(
        name=name,
        summary="Emoji judge: a 4-level CNN giving coarse-class logits, identity logits over "
        "all emoji and features for emoji-FD (32 px input).",
        config=config or JudgeConfig(num_emoji=len(select("all"))),
        recipe=recipe or JudgeRecipe(),
        build=build_judge,
        open=open_judge,
        data_version=DATA_VERSION,
        card=CARD_TEXT,
    )
