"""Official Flax checkpoints and the public PyTorch ports → this package's state dicts.

Flax tensors (spec §6): conv kernels HWIO → OIHW (permute 3, 2, 0, 1); Dense kernels (in, out)
→ (out, in); attention q/k/v kernels (D, H, d) → (H·d, D) packed as q | k | v; the output
kernel (H, d, D) → (D, H·d); GroupNorm/LayerNorm ``scale`` → ``weight``. The tokenizer's
ResBlock_k / Conv_k numbering follows module creation order in the official code.

PyTorch ports: hmorimitsu/maskgit-torch (tokenizer and transformer; ``.ckpt`` with a
``state_dict``) and open-muse ``MaskGitVQGAN`` (tokenizer; e.g. TiTok's
``maskgit-vqgan-imagenet-f16-256.bin``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import torch

from diffrepro.maskgit.transformer import TransformerConfig
from diffrepro.maskgit.vqgan import VQGANConfig

RESBLOCK_PARTS = {
    "GroupNorm_0": "norm1",
    "Conv_0": "conv1",
    "GroupNorm_1": "norm2",
    "Conv_1": "conv2",
    "Conv_2": "shortcut",
}


class _Taker:
    """Pops flax tensors by name, so unused names can be reported."""

    def __init__(self, flat: Mapping[str, np.ndarray], source: str) -> None:
        self.flat, self.source, self.used = dict(flat), source, set()

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.flat:
            raise ValueError(f"{self.source}: the Flax checkpoint has no tensor {name!r}")
        self.used.add(name)
        return np.asarray(self.flat[name], dtype=np.float32)

    def check_all_used(self) -> None:
        left = sorted(set(self.flat) - self.used)
        if left:
            shown = ", ".join(left[:10]) + (" ..." if len(left) > 10 else "")
            raise ValueError(f"{self.source}: unexpected Flax tensors {shown}")


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, copy=True, order="C"))


def _conv(take: _Taker, flax: str, ours: str, out: dict, bias: bool = True) -> None:
    out[f"{ours}.weight"] = _t(take(f"{flax}.kernel").transpose(3, 2, 0, 1))
    if bias:
        out[f"{ours}.bias"] = _t(take(f"{flax}.bias"))


def _norm(take: _Taker, flax: str, ours: str, out: dict) -> None:
    out[f"{ours}.weight"] = _t(take(f"{flax}.scale"))
    out[f"{ours}.bias"] = _t(take(f"{flax}.bias"))


def _dense(take: _Taker, flax: str, ours: str, out: dict) -> None:
    out[f"{ours}.weight"] = _t(take(f"{flax}.kernel").T)
    out[f"{ours}.bias"] = _t(take(f"{flax}.bias"))


def _resblock(take: _Taker, flax: str, ours: str, out: dict) -> None:
    for part, name in RESBLOCK_PARTS.items():
        if part in ("GroupNorm_0", "GroupNorm_1"):
            _norm(take, f"{flax}.{part}", f"{ours}.{name}", out)
        elif part != "Conv_2" or f"{flax}.Conv_2.kernel" in take.flat:
            _conv(take, f"{flax}.{part}", f"{ours}.{name}", out, bias=False)


# --- tokenizer -----------------------------------------------------------------------------


def infer_tokenizer_config(flat: Mapping[str, np.ndarray]) -> VQGANConfig:
    """The VQGANConfig whose shapes match a flattened Flax tokenizer tree."""
    enc_blocks = {int(m.group(1)) for k in flat if (m := re.match(r"encoder\.ResBlock_(\d+)\.", k))}
    dec_convs = {int(m.group(1)) for k in flat if (m := re.match(r"decoder\.Conv_(\d+)\.", k))}
    if not enc_blocks or not dec_convs or "quantizer.codebook" not in flat:
        raise ValueError("not a MaskGIT tokenizer checkpoint (no encoder/decoder/quantizer)")
    levels = len(dec_convs) - 1
    res = len(enc_blocks) // (levels + 1)
    filters = int(flat["encoder.Conv_0.kernel"].shape[3])
    mults = tuple(
        int(flat[f"encoder.ResBlock_{lvl * res}.Conv_0.kernel"].shape[3]) // filters
        for lvl in range(levels)
    )
    codes, dim = flat["quantizer.codebook"].shape
    return VQGANConfig(
        filters=filters,
        channel_multipliers=mults,
        num_res_blocks=res,
        embedding_dim=int(dim),
        codebook_size=int(codes),
        groups=32 if filters % 32 == 0 else math.gcd(32, filters),
    )


def flax_tokenizer_state(
    flat: Mapping[str, np.ndarray], cfg: VQGANConfig, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    take, out = _Taker(flat, source), {}
    levels, res = len(cfg.channel_multipliers), cfg.num_res_blocks
    _conv(take, "encoder.Conv_0", "encoder.conv_in", out, bias=False)
    for k in range((levels + 1) * res):
        ours = (
            f"encoder.levels.{k // res}.{k % res}"
            if k < levels * res
            else (f"encoder.mid.{k - levels * res}")
        )
        _resblock(take, f"encoder.ResBlock_{k}", ours, out)
    _norm(take, "encoder.GroupNorm_0", "encoder.norm_out", out)
    _conv(take, "encoder.Conv_1", "encoder.conv_out", out)
    out["quantizer.codebook"] = _t(take("quantizer.codebook"))
    _conv(take, "decoder.Conv_0", "decoder.conv_in", out)
    for k in range((levels + 1) * res):
        ours = (
            f"decoder.mid.{k}"
            if k < res
            else (f"decoder.levels.{(k - res) // res}.blocks.{(k - res) % res}")
        )
        _resblock(take, f"decoder.ResBlock_{k}", ours, out)
    for j in range(levels - 1):
        _conv(take, f"decoder.Conv_{j + 1}", f"decoder.levels.{j}.upsample_conv", out)
    _norm(take, "decoder.GroupNorm_0", "decoder.norm_out", out)
    _conv(take, f"decoder.Conv_{levels}", "decoder.conv_out", out)
    take.check_all_used()
    return out


def torch_tokenizer_state(state: Mapping[str, torch.Tensor], cfg: VQGANConfig) -> dict:
    """hmorimitsu or open-muse tokenizer keys → ours (ours pass through)."""
    levels = len(cfg.channel_multipliers)
    parts = {
        "norm0": "norm1",
        "conv0": "conv1",
        "norm1": "norm2",
        "conv1": "conv2",
        "conv_res": "shortcut",
    }
    muse = {"nin_shortcut": "shortcut"}
    out = {}
    for key, value in state.items():
        new = key
        if m := re.fullmatch(r"(encoder|decoder)\.res_blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)", key):
            side, lvl, i, part, leaf = m.group(1), int(m.group(2)), int(m.group(3)), *m.group(4, 5)
            if side == "encoder":
                prefix = f"encoder.levels.{lvl}.{i}" if lvl < levels else f"encoder.mid.{i}"
            elif lvl == 0:
                prefix = f"decoder.mid.{i}"
            else:
                prefix = f"decoder.levels.{lvl - 1}.blocks.{i}"
            new = f"{prefix}.{parts.get(part, part)}.{leaf}"
        elif m := re.fullmatch(r"decoder\.res_blocks\.(\d+)\.\d+\.(weight|bias)", key):
            new = f"decoder.levels.{int(m.group(1)) - 1}.upsample_conv.{m.group(2)}"
        elif m := re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
            part = muse.get(m.group(3), m.group(3))
            new = f"encoder.levels.{m.group(1)}.{m.group(2)}.{part}.{m.group(4)}"
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
            part = muse.get(m.group(3), m.group(3))
            j = levels - 1 - int(m.group(1))
            new = f"decoder.levels.{j}.blocks.{m.group(2)}.{part}.{m.group(4)}"
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.upsample_conv\.(\w+)", key):
            new = f"decoder.levels.{levels - 1 - int(m.group(1))}.upsample_conv.{m.group(2)}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid\.(\d+)\.(\w+)\.(\w+)", key):
            new = f"{m.group(1)}.mid.{m.group(2)}.{muse.get(m.group(3), m.group(3))}.{m.group(4)}"
        elif key in ("quantize.embedding.weight", "quantizer.codebook.weight"):
            new = "quantizer.codebook"
        out[new] = value
    return out


# --- transformer ---------------------------------------------------------------------------


def infer_transformer_config(
    flat: Mapping[str, np.ndarray], codebook_size: int = 1024
) -> TransformerConfig:
    """The TransformerConfig matching a flattened Flax transformer tree (K must be given: the
    shapes only fix V = K + C + 1)."""
    if "Embed_0.word_embeddings.embedding" not in flat:
        raise ValueError("not a MaskGIT transformer checkpoint (no Embed_0.word_embeddings)")
    vocab, width = flat["Embed_0.word_embeddings.embedding"].shape
    seq = flat["Embed_0.position_embeddings.embedding"].shape[0]
    depth = len({m.group(1) for k in flat if (m := re.match(r"TransformerLayer_(\d+)\.", k))})
    q = flat["TransformerLayer_0.Attention_0.self_attention.query.kernel"]
    mlp = flat["TransformerLayer_0.Mlp_0.intermediate_output.kernel"].shape[1]
    latent = math.isqrt(seq - 1)
    if latent**2 != seq - 1:
        raise ValueError(f"{seq} position embeddings are not 1 + a square number of tokens")
    return TransformerConfig(
        codebook_size=codebook_size,
        num_classes=int(vocab) - codebook_size - 1,
        latent_size=latent,
        width=int(width),
        depth=depth,
        heads=int(q.shape[1]),
        mlp_dim=int(mlp),
    )


def flax_transformer_state(
    flat: Mapping[str, np.ndarray], cfg: TransformerConfig, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    take, out, d = _Taker(flat, source), {}, cfg.width
    out["tok_emb.weight"] = _t(take("Embed_0.word_embeddings.embedding"))
    out["pos_emb"] = _t(take("Embed_0.position_embeddings.embedding"))
    _norm(take, "Embed_0.embeddings_ln", "emb_ln", out)
    for i in range(cfg.depth):
        flax, ours = f"TransformerLayer_{i}", f"blocks.{i}"
        att = f"{flax}.Attention_0.self_attention"
        names = ("query", "key", "value")
        out[f"{ours}.attn.qkv.weight"] = _t(
            np.concatenate([take(f"{att}.{n}.kernel").reshape(d, d).T for n in names])
        )
        out[f"{ours}.attn.qkv.bias"] = _t(
            np.concatenate([take(f"{att}.{n}.bias").reshape(d) for n in names])
        )
        out[f"{ours}.attn.out.weight"] = _t(take(f"{att}.out.kernel").reshape(d, d).T)
        out[f"{ours}.attn.out.bias"] = _t(take(f"{att}.out.bias"))
        _norm(take, f"{flax}.Attention_0.attention_output_ln", f"{ours}.attn_ln", out)
        _dense(take, f"{flax}.Mlp_0.intermediate_output", f"{ours}.mlp.fc1", out)
        _dense(take, f"{flax}.Mlp_0.layer_output", f"{ours}.mlp.fc2", out)
        _norm(take, f"{flax}.Mlp_0.layer_output_ln", f"{ours}.mlp_ln", out)
    _dense(take, "MlmLayer_0.mlm_dense", "head.dense", out)
    _norm(take, "MlmLayer_0.mlm_ln", "head.ln", out)
    out["head.bias"] = _t(take("MlmLayer_0.mlm_bias.bias"))
    take.check_all_used()
    return out


HMORIMITSU_TRANSFORMER = (
    (r"blocks\.(\d+)\.MultiHeadAttention\.in_proj_(weight|bias)", r"blocks.\1.attn.qkv.\2"),
    (r"blocks\.(\d+)\.MultiHeadAttention\.out_proj\.(weight|bias)", r"blocks.\1.attn.out.\2"),
    (r"blocks\.(\d+)\.AttentionLN\.(weight|bias)", r"blocks.\1.attn_ln.\2"),
    (r"blocks\.(\d+)\.MlpLN\.(weight|bias)", r"blocks.\1.mlp_ln.\2"),
    (r"blocks\.(\d+)\.MLP\.0\.(weight|bias)", r"blocks.\1.mlp.fc1.\2"),
    (r"blocks\.(\d+)\.MLP\.2\.(weight|bias)", r"blocks.\1.mlp.fc2.\2"),
    (r"Token_Prediction\.0\.(weight|bias)", r"head.dense.\1"),
    (r"Token_Prediction\.2\.(weight|bias)", r"head.ln.\1"),
    (r"bias", r"head.bias"),
)


def torch_transformer_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """hmorimitsu transformer keys → ours (ours pass through)."""
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in HMORIMITSU_TRANSFORMER:
            if re.fullmatch(pattern, key):
                new = re.sub(pattern, repl, key)
                break
        out[new] = value
    return out
