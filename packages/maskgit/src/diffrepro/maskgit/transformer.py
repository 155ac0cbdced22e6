"""The bidirectional (BERT-style, post-LN) transformer of official ``nets/maskgit_transformer``.

Vocabulary layout (official): ids [0, K) are image codes, K + label is the class token at
sequence position 0, and the last id V - 1 = K + C is the mask token (the official config's -1,
which JAX's negative-index gather maps to row V - 1). V = K + C + 1, sequence length N + 1.

Layer: h = LN(x + Drop(MHA(x))); x' = LN(h + Drop(W2 GELU_tanh(W1 h))), LN eps 1e-12. Output
head (MlmLayer): Dense, GELU, LN, then logits = h Eᵀ + b with E the word embeddings (tied).
``causal=True`` gives the raster-order AR baseline of the same width (output j predicts j+1).

``forward(tokens, attention=...)`` can record every layer's attention probabilities (B, H, L, L)
or edit them, for MaskSketch; see :class:`AttentionRecorder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.attention import attention as attend

LN_EPS = 1e-12
ProbsHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]


@dataclass(frozen=True)
class TransformerConfig:
    """Official 256 px config by default: 24 layers, 768 wide, 16 heads, 1024 codes, 1000
    classes, 16×16 tokens."""

    codebook_size: int = 1024
    num_classes: int = 1000
    latent_size: int = 16
    width: int = 768
    depth: int = 24
    heads: int = 16
    mlp_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    causal: bool = False

    def __post_init__(self) -> None:
        for name in ("codebook_size", "latent_size", "width", "depth", "heads", "mlp_dim"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"transformer.{name} must be at least 1, got {getattr(self, name)}"
                )
        if self.num_classes < 1:
            raise ValueError(f"transformer.num_classes must be at least 1, got {self.num_classes}")
        if self.width % self.heads:
            raise ValueError(
                f"transformer.width {self.width} is not divisible by {self.heads} heads"
            )
        for name in ("dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"transformer.{name} must lie in [0, 1)")

    @property
    def num_tokens(self) -> int:
        return self.latent_size**2

    @property
    def seq_len(self) -> int:
        return self.num_tokens + 1

    @property
    def mask_id(self) -> int:
        return self.codebook_size + self.num_classes

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_classes + 1

    def class_id(self, label: int | torch.Tensor) -> int | torch.Tensor:
        return self.codebook_size + label


def gelu(x: torch.Tensor) -> torch.Tensor:
    """JAX's default GELU: the tanh approximation."""
    return F.gelu(x, approximate="tanh")


class SelfAttention(nn.Module):
    """Multi-head self-attention with packed q/k/v (head-major, as Flax DenseGeneral)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x, *, causal: bool = False, hook=None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        bias = None
        if causal:
            bias = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        drop = self.dropout if self.training else 0.0
        if drop > 0 or hook is not None:

            def probs_hook(probs: torch.Tensor) -> torch.Tensor:
                if hook is not None:
                    replaced = hook(probs)
                    probs = probs if replaced is None else replaced
                return F.dropout(probs, drop, training=drop > 0)

            y = attend(q, k, v, bias=bias, probs_hook=probs_hook)
        else:
            y = attend(q, k, v, bias=bias)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu(self.fc1(x)))


class Layer(nn.Module):
    """Post-LN transformer layer."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn = SelfAttention(cfg.width, cfg.heads, cfg.attention_dropout)
        self.attn_ln = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.mlp = Mlp(cfg.width, cfg.mlp_dim)
        self.mlp_ln = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, *, causal: bool = False, hook=None) -> torch.Tensor:
        h = self.attn_ln(x + self.drop(self.attn(x, causal=causal, hook=hook)))
        return self.mlp_ln(h + self.drop(self.mlp(h)))


class MlmHead(nn.Module):
    """Dense → GELU → LN → tied logits h Eᵀ + b."""

    def __init__(self, width: int, vocab: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.ln = nn.LayerNorm(width, eps=LN_EPS)
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.ln(gelu(self.dense(h))) @ embedding.t() + self.bias


class AttentionRecorder:
    """A ``hook`` for :meth:`MaskGitTransformer.forward` that keeps layer ``i``'s probabilities
    (B, H, L, L) in ``self.probs[i]`` for the chosen ``layers`` (all when None)."""

    def __init__(self, layers: tuple[int, ...] | None = None) -> None:
        self.layers = layers
        self.probs: dict[int, torch.Tensor] = {}

    def __call__(self, layer: int, probs: torch.Tensor) -> None:
        if self.layers is None or layer in self.layers:
            self.probs[layer] = probs


class MaskGitTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.seq_len, cfg.width))
        self.emb_ln = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Layer(cfg) for _ in range(cfg.depth))
        self.head = MlmHead(cfg.width, cfg.vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated normal (±2σ), σ = 0.02, zero biases, unit LN scales (official init)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.pos_emb, std=0.02, a=-0.04, b=0.04)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: torch.Tensor, *, hook: ProbsHook | None = None) -> torch.Tensor:
        """Logits (B, L, V) over the whole vocabulary for tokens (B, L), L ≤ N + 1.

        ``hook(layer_index, probs)`` sees each layer's attention probabilities and may return a
        replacement (e.g. :class:`AttentionRecorder`)."""
        cfg = self.config
        if tokens.dim() != 2 or tokens.shape[1] > cfg.seq_len:
            raise ValueError(
                f"tokens must be (batch, ≤{cfg.seq_len}), got shape {tuple(tokens.shape)}"
            )
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= cfg.vocab_size):
            raise ValueError(f"token ids must lie in [0, {cfg.vocab_size}) (mask id {cfg.mask_id})")
        x = self.tok_emb(tokens) + self.pos_emb[: tokens.shape[1]]
        x = self.drop(self.emb_ln(x))
        for i, block in enumerate(self.blocks):
            layer_hook = None if hook is None else (lambda p, i=i: hook(i, p))
            x = block(x, causal=cfg.causal, hook=layer_hook)
        return self.head(x, self.tok_emb.weight)

    def attention_maps(
        self, tokens: torch.Tensor, layers: tuple[int, ...] | None = None
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(logits, {layer: probs (B, H, L, L)}) in one pass."""
        recorder = AttentionRecorder(layers)
        return self(tokens, hook=recorder), recorder.probs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
