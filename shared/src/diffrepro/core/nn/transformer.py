"""Cross-attention transformer blocks of the SD UNet (diffusers' parameter names) and the
attention-probability hooks that editing methods use.

Modules: :class:`CrossAttention` (diffusers' ``Attention``: ``to_q``, ``to_k``, ``to_v``,
``to_out.0``), :class:`GEGLU`, :class:`FeedForward` (``net.0.proj``, ``net.2``),
:class:`BasicTransformerBlock` (pre-LN self-attention, cross-attention, GEGLU feed-forward) and
:class:`Transformer2DModel` (GroupNorm eps 1e-6, 1×1-conv or linear ``proj_in``/``proj_out``).

Hooks. ``with attention_hooks(model, hook): model(...)`` calls, for every
:class:`CrossAttention` inside ``model`` (UNet, VAE, a single block)::

    hook(name, is_cross, probs) -> None | Tensor

``name`` is the module path (``"down_blocks.0.attentions.0.transformer_blocks.0.attn2"``),
``is_cross`` tells cross-attention (keys from the text context) from self-attention, and
``probs`` are the softmax probabilities, shape (B, heads, N_query, N_key), rows summing to 1. In a
classifier-free-guided batch the first half is the unconditional branch. Returning a tensor of
the same shape replaces the probabilities (prompt-to-prompt edits, pix2pix-zero's
cross-attention guidance, which needs gradients through them); returning ``None`` keeps them.
Without hooks every layer runs the fused path, :func:`diffrepro.core.attention.attention`;
with hooks it runs with ``probs_hook`` (the math backend, probabilities from
:func:`diffrepro.core.attention.attention_probs`); the two paths agree to float rounding.
:class:`AttentionStore` is a ready-made capturing hook.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from diffrepro.core.attention import attention

AttentionHook = Callable[[str, bool, torch.Tensor], "torch.Tensor | None"]


class CrossAttention(nn.Module):
    """Multi-head attention; ``forward(x, context=None)`` attends to ``context`` (or ``x``).

    ``upcast=True`` computes the scores of half-precision inputs in float32 (diffusers'
    ``upcast_attention`` / ``upcast_softmax``); float32 and float64 inputs are unaffected.
    """

    def __init__(
        self,
        query_dim: int,
        *,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        bias: bool = False,
        upcast: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.upcast = upcast
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(dropout)])
        self.hook: tuple[str, AttentionHook] | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        source = x if context is None else context
        q, k, v = (self._split(t) for t in (self.to_q(x), self.to_k(source), self.to_v(source)))
        out = self._attend(q, k, v, is_cross=context is not None)
        b, h, n, d = out.shape
        out = out.transpose(1, 2).reshape(b, n, h * d)
        return self.to_out[1](self.to_out[0](out))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, inner = t.shape
        return t.view(b, n, self.heads, inner // self.heads).transpose(1, 2)

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, is_cross: bool
    ) -> torch.Tensor:
        dtype = q.dtype
        if self.upcast and dtype in (torch.float16, torch.bfloat16):
            q, k, v = q.float(), k.float(), v.float()
        if self.hook is None:
            return attention(q, k, v).to(dtype)
        name, hook = self.hook

        def probs_hook(probs: torch.Tensor) -> torch.Tensor | None:
            replaced = hook(name, is_cross, probs)
            if replaced is not None and replaced.shape != probs.shape:
                raise ValueError(
                    f"attention hook for {name} returned shape {tuple(replaced.shape)}, "
                    f"expected {tuple(probs.shape)}"
                )
            return replaced

        return attention(q, k, v, probs_hook=probs_hook).to(dtype)


class GEGLU(nn.Module):
    """``value * gelu(gate)`` with ``value, gate = proj(x).chunk(2)`` (value first, exact GELU)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """``net = [GEGLU(dim, mult·dim), Dropout, Linear(mult·dim, dim)]``."""

    def __init__(self, dim: int, *, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.ModuleList(
            [GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    """``x += attn1(norm1 x)``; ``x += attn2(norm2 x, context)``; ``x += ff(norm3 x)``.

    ``only_cross_attention`` makes ``attn1`` attend to the context as well (diffusers' flag).
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int,
        dim_head: int,
        context_dim: int,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.only_cross_attention = only_cross_attention
        common = {
            "heads": heads,
            "dim_head": dim_head,
            "upcast": upcast_attention,
            "dropout": dropout,
        }
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = CrossAttention(
            dim, context_dim=context_dim if only_cross_attention else None, **common
        )
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = CrossAttention(dim, context_dim=context_dim, **common)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x), context if self.only_cross_attention else None)
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """Spatial transformer: GroupNorm(eps 1e-6) → proj_in → blocks over H·W tokens → proj_out,
    plus the input. ``use_linear_projection`` (SD 2.x) makes ``proj_in``/``proj_out`` Linear
    layers applied to tokens instead of 1×1 convolutions."""

    def __init__(
        self,
        channels: int,
        *,
        heads: int,
        context_dim: int,
        groups: int,
        num_layers: int = 1,
        use_linear_projection: bool = False,
        only_cross_attention: bool = False,
        upcast_attention: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dim_head = channels // heads
        inner = heads * dim_head
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        if use_linear_projection:
            self.proj_in, self.proj_out = nn.Linear(channels, inner), nn.Linear(inner, channels)
        else:
            self.proj_in, self.proj_out = (
                nn.Conv2d(channels, inner, 1),
                nn.Conv2d(inner, channels, 1),
            )
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                inner,
                heads=heads,
                dim_head=dim_head,
                context_dim=context_dim,
                only_cross_attention=only_cross_attention,
                upcast_attention=upcast_attention,
                dropout=dropout,
            )
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        u = self.norm(x)
        if not self.use_linear_projection:
            u = self.proj_in(u)
        u = u.permute(0, 2, 3, 1).reshape(b, h * w, u.shape[1])
        if self.use_linear_projection:
            u = self.proj_in(u)
        for block in self.transformer_blocks:
            u = block(u, context)
        if self.use_linear_projection:
            u = self.proj_out(u)
        u = u.reshape(b, h, w, u.shape[-1]).permute(0, 3, 1, 2)
        if not self.use_linear_projection:
            u = self.proj_out(u)
        return u + x


@contextmanager
def attention_hooks(model: nn.Module, hook: AttentionHook) -> Iterator[list[str]]:
    """Route every :class:`CrossAttention` of ``model`` through ``hook`` (module docstring);
    yields the hooked layer names in forward order of registration. Hooks set by an outer
    ``with`` are restored on exit."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, CrossAttention)]
    previous = [m.hook for _, m in layers]
    for name, module in layers:
        module.hook = (name, hook)
    try:
        yield [name for name, _ in layers]
    finally:
        for (_, module), old in zip(layers, previous):
            module.hook = old


class AttentionStore:
    """A capturing hook: ``maps[name]`` lists the probabilities of each call, detached.

    ``cross_only`` keeps cross-attention only; ``max_queries`` skips layers with more query
    tokens (e.g. 32·32 to drop the 64×64 level, whose maps are large).
    """

    def __init__(self, *, cross_only: bool = True, max_queries: int | None = None) -> None:
        self.cross_only = cross_only
        self.max_queries = max_queries
        self.maps: dict[str, list[torch.Tensor]] = defaultdict(list)

    def __call__(self, name: str, is_cross: bool, probs: torch.Tensor) -> None:
        if self.cross_only and not is_cross:
            return None
        if self.max_queries is not None and probs.shape[-2] > self.max_queries:
            return None
        self.maps[name].append(probs.detach())
        return None
