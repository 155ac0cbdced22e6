"""A pretrained UNet with the trainable set of a variant and, for ``a3ft``, time-aware adapters.

Works on the three UNet layouts of the core, found by module type:

- ADM (:class:`~diffrepro.core.models.unet.UNetModel`): attention blocks are
  :class:`~diffrepro.core.nn.AttentionBlock` (``norm``, ``qkv``, ``proj_out``);
- diffusers ``UNet2DModel`` (:mod:`diffrepro.core.models.unet2d`): ``attentions.*`` are
  ``SpatialSelfAttention`` (``group_norm``, ``to_q``, ``to_k``, ``to_v``, ``to_out.0``);
- diffusers ``UNet2DConditionModel`` (:mod:`diffrepro.core.models.sd_unet`): ``attentions.*``
  are ``Transformer2DModel`` (``norm``, ``proj_in``, ``transformer_blocks``, ``proj_out``).

:class:`FineTuneModel` keeps the base UNet's module tree untouched (``unet.<official key>``)
and holds the adapters beside it (``adapters.<block key>``). Forward hooks do the wiring: a
pre-hook on the first resnet records the embedding ``e_t`` the resnets consume (time, plus the
class embedding of a class-conditional ADM), and a hook on each attention block adds
``s(t) W_up a`` to its output (``placement="after"``) or ``W_o s(t) W_up a``, the branch
entering before the block's output projection ``W_o`` (``placement="before_proj"``).
"""

from __future__ import annotations

import torch
from torch import nn

from diffrepro.core.models.sd_blocks import ResnetBlock2D
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.core.models.unet import UNetModel
from diffrepro.core.models.unet2d import SpatialSelfAttention, UNet2DModel
from diffrepro.core.nn import AttentionBlock, ResBlock, Transformer2DModel

from .adapter import TimeAwareAdapter, adapter_param_count
from .config import AdapterConfig, FTConfig

ATTENTION_TYPES = (AttentionBlock, SpatialSelfAttention, Transformer2DModel)
UNET_TYPES = (UNetModel, UNet2DModel, UNet2DConditionModel)


def attention_blocks(unet: nn.Module) -> dict[str, nn.Module]:
    """The UNet's attention blocks by module name, in registration (= forward) order."""
    blocks = {n: m for n, m in unet.named_modules() if isinstance(m, ATTENTION_TYPES)}
    if not blocks:
        raise ValueError(f"{type(unet).__name__} has no attention blocks to fine-tune")
    return blocks


def out_projection(block: nn.Module) -> torch.Tensor:
    """The block's output projection ``W_o`` as a (C, inner) matrix (its weight, not a copy)."""
    if isinstance(block, AttentionBlock):
        return block.proj_out.weight[:, :, 0]
    if isinstance(block, SpatialSelfAttention):
        return block.to_out[0].weight
    weight = block.proj_out.weight
    return weight.reshape(weight.shape[0], weight.shape[1])


def first_resnet(unet: nn.Module) -> nn.Module:
    """The first module that consumes the embedding (ADM ResBlock or diffusers resnet)."""
    for module in unet.modules():
        if isinstance(module, ResBlock):
            return module
        if isinstance(module, ResnetBlock2D) and module.time_emb_proj is not None:
            return module
    raise ValueError(f"{type(unet).__name__} has no time-conditioned resnet")


def embedding_dim(resnet: nn.Module) -> int:
    if isinstance(resnet, ResBlock):
        return resnet.emb_layers[1].in_features
    return resnet.time_emb_proj.in_features


def block_key(name: str) -> str:
    """A module name as a ModuleDict key (``input_blocks.4.1`` → ``input_blocks-4-1``)."""
    return name.replace(".", "-")


def adapter_shapes(unet: nn.Module, placement: str) -> dict[str, tuple[int, int, int]]:
    """(C, d_e, out) of the adapter of each attention block."""
    emb = embedding_dim(first_resnet(unet))
    shapes = {}
    for name, block in attention_blocks(unet).items():
        w_o = out_projection(block)
        out = w_o.shape[1] if placement == "before_proj" else w_o.shape[0]
        shapes[name] = (w_o.shape[0], emb, out)
    return shapes


def adapter_budget_count(unet: nn.Module, config: AdapterConfig, rank: int) -> int:
    """The closed-form adapter parameter count over every attention block at ``rank``."""
    return sum(
        adapter_param_count(
            c,
            d,
            rank,
            out,
            kv_source=config.kv_source,
            scale=config.scale,
            ln_affine=config.ln_affine,
        )  # fmt: skip
        for c, d, out in adapter_shapes(unet, config.placement).values()
    )


def choose_rank(unet: nn.Module, config: AdapterConfig) -> int:
    """``config.rank``, or the width whose total count is nearest ``budget`` × UNet size."""
    if config.rank is not None:
        return config.rank
    target = config.budget * sum(p.numel() for p in unet.parameters())
    widest = max(c for c, _, _ in adapter_shapes(unet, config.placement).values())
    return min(
        range(1, widest + 1), key=lambda r: abs(adapter_budget_count(unet, config, r) - target)
    )


class FineTuneModel(nn.Module):
    """``unet`` plus (possibly no) adapters; ``forward`` is the base UNet's forward.

    The model takes ``unet`` over: its ``requires_grad`` flags are set to the variant's
    trainable set and the adapter hooks are attached to it (:meth:`remove_hooks` detaches
    them); pass a copy to keep the pretrained module as it was."""

    def __init__(self, unet: nn.Module, config: FTConfig, *, rank: int | None = None) -> None:
        super().__init__()
        if not isinstance(unet, UNET_TYPES):
            raise ValueError(f"unsupported UNet type {type(unet).__name__}")
        if getattr(getattr(unet, "config", None), "use_checkpoint", False):
            raise ValueError("adapters need use_checkpoint=False (gradient checkpointing off)")
        self.unet = unet
        self.ft_config = config
        self.adapters = nn.ModuleDict()
        self.rank: int | None = None
        self._emb: torch.Tensor | None = None
        self._handles: list = []
        if config.variant in ("a3ft", "adapter"):
            self._add_adapters(rank)
        set_trainable(self, trainable_names(self))

    @property
    def config(self):
        """The base UNet's config (so samplers that read ``unet.config`` accept this model)."""
        return self.unet.config

    def forward(self, *args, **kwargs) -> torch.Tensor:
        self._emb = None
        try:
            return self.unet(*args, **kwargs)
        finally:
            self._emb = None

    def _add_adapters(self, rank: int | None) -> None:
        cfg = self.ft_config.adapter
        self.rank = rank if rank is not None else choose_rank(self.unet, cfg)
        gen = torch.Generator().manual_seed(cfg.init_seed)
        device = next(self.unet.parameters()).device
        blocks = attention_blocks(self.unet)
        for name, (c, d, out) in adapter_shapes(self.unet, cfg.placement).items():
            adapter = TimeAwareAdapter(
                c, d, self.rank, out, kv_source=cfg.kv_source, scale=cfg.scale,
                ln_affine=cfg.ln_affine, gain=self.ft_config.adapter_gain, generator=gen,
            )  # fmt: skip
            self.adapters[block_key(name)] = adapter.to(device)
            self._handles.append(blocks[name].register_forward_hook(_AdapterHook(self, name)))
        hook = first_resnet(self.unet).register_forward_pre_hook(self._record_embedding)
        self._handles.append(hook)

    def remove_hooks(self) -> None:
        """Detach the adapters from the base UNet (it is the pretrained network again)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _record_embedding(self, module: nn.Module, args: tuple) -> None:
        self._emb = args[1]

    def embedding(self) -> torch.Tensor:
        if self._emb is None:
            raise RuntimeError("an attention block ran before the embedding was recorded")
        return self._emb


class _AdapterHook:
    """Adds the adapter branch of block ``name`` to that block's output."""

    def __init__(self, owner: FineTuneModel, name: str) -> None:
        self.owner, self.name = owner, name

    def __call__(self, block: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        h = args[0]
        b, c, *spatial = h.shape
        tokens = h.reshape(b, c, -1).transpose(1, 2)
        adapter = self.owner.adapters[block_key(self.name)]
        branch = adapter(tokens, self.owner.embedding())
        if self.owner.ft_config.adapter.placement == "before_proj":
            branch = branch @ out_projection(block).transpose(0, 1).to(branch.dtype)
            branch = branch / getattr(block, "rescale_output_factor", 1.0)
        return output + branch.transpose(1, 2).reshape(output.shape)


def trainable_names(model: FineTuneModel) -> list[str]:
    """The parameter names of ``model`` that the config's variant trains (sorted)."""
    cfg = model.ft_config
    names: list[str] = []
    if cfg.variant == "full":
        names = [f"unet.{n}" for n, _ in model.unet.named_parameters()]
    if cfg.variant in ("attn", "a3ft"):
        names = attention_parameter_names(model.unet, cfg.attn_parts)
    if cfg.variant in ("a3ft", "adapter"):
        names += [f"adapters.{n}" for n, _ in model.adapters.named_parameters()]
    return sorted(names)


def attention_parameter_names(unet: nn.Module, parts: tuple[str, ...] = ()) -> list[str]:
    """``unet.<block>.<param>`` for every attention block; only params whose name relative to
    the block starts with one of ``parts`` (dot-separated prefixes) when ``parts`` is given."""
    names, used = [], set()
    for block_name, block in attention_blocks(unet).items():
        for rel, _ in block.named_parameters():
            hit = [p for p in parts if rel == p or rel.startswith(p + ".")]
            if parts and not hit:
                continue
            used.update(hit)
            names.append(f"unet.{block_name}.{rel}")
    unknown = [p for p in parts if p not in used]
    if unknown:
        example = next(iter(attention_blocks(unet).values()))
        known = sorted({rel.split(".")[0] for rel, _ in example.named_parameters()})
        raise ValueError(f"attn_parts {unknown} match no attention parameter (have: {known})")
    return names


def set_trainable(model: nn.Module, names: list[str]) -> None:
    """``requires_grad`` exactly on ``names``."""
    wanted = set(names)
    for name, param in model.named_parameters():
        param.requires_grad_(name in wanted)


def parameter_report(model: FineTuneModel) -> dict:
    """Counts behind the paper's "≈1.8 % extra parameters" and the trainable share per run."""
    base = sum(p.numel() for p in model.unet.parameters())
    adapters = sum(p.numel() for p in model.adapters.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "variant": model.ft_config.variant,
        "base_parameters": base,
        "adapter_parameters": adapters,
        "adapter_fraction": adapters / base,
        "adapter_rank": model.rank,
        "adapter_blocks": len(model.adapters),
        "trainable_parameters": trainable,
        "trainable_fraction": trainable / (base + adapters),
    }
