"""A float64 numpy rewrite of the official Flax forward passes, reading Flax-named trees
directly (no torch), and a builder of miniature random trees with the official names/shapes."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


# --- building random Flax trees -------------------------------------------------------------
def _rng_array(rng, *shape):
    return (rng.standard_normal(shape) * 0.2).astype(np.float32)


def _norm(rng, c):
    return {"scale": (1 + _rng_array(rng, c)).astype(np.float32), "bias": _rng_array(rng, c)}


def _resblock(rng, cin, cout):
    block = {
        "GroupNorm_0": _norm(rng, cin),
        "Conv_0": {"kernel": _rng_array(rng, 3, 3, cin, cout)},
        "GroupNorm_1": _norm(rng, cout),
        "Conv_1": {"kernel": _rng_array(rng, 3, 3, cout, cout)},
    }
    if cin != cout:
        block["Conv_2"] = {"kernel": _rng_array(rng, 1, 1, cout, cout)}
    return block


def tokenizer_tree(seed=0, filters=8, mults=(1, 2), res=2, dim=4, codes=12):
    rng = np.random.default_rng(seed)
    enc, dec = {}, {}
    enc["Conv_0"] = {"kernel": _rng_array(rng, 3, 3, 3, filters)}
    k, prev = 0, filters
    for m in mults:
        for _ in range(res):
            enc[f"ResBlock_{k}"] = _resblock(rng, prev, filters * m)
            prev, k = filters * m, k + 1
    for _ in range(res):
        enc[f"ResBlock_{k}"] = _resblock(rng, prev, prev)
        k += 1
    enc["GroupNorm_0"] = _norm(rng, prev)
    enc["Conv_1"] = {"kernel": _rng_array(rng, 1, 1, prev, dim), "bias": _rng_array(rng, dim)}
    dec["Conv_0"] = {"kernel": _rng_array(rng, 3, 3, dim, prev), "bias": _rng_array(rng, prev)}
    k, conv = 0, 1
    for _ in range(res):
        dec[f"ResBlock_{k}"] = _resblock(rng, prev, prev)
        k += 1
    for i in reversed(range(len(mults))):
        c = filters * mults[i]
        for _ in range(res):
            dec[f"ResBlock_{k}"] = _resblock(rng, prev, c)
            prev, k = c, k + 1
        if i > 0:
            dec[f"Conv_{conv}"] = {
                "kernel": _rng_array(rng, 3, 3, c, c),
                "bias": _rng_array(rng, c),
            }
            conv += 1
    dec["GroupNorm_0"] = _norm(rng, prev)
    dec[f"Conv_{conv}"] = {"kernel": _rng_array(rng, 3, 3, prev, 3), "bias": _rng_array(rng, 3)}
    quant = {"codebook": _rng_array(rng, codes, dim)}
    return {"params": {"encoder": enc, "quantizer": quant, "decoder": dec}}


def transformer_tree(seed=0, vocab=20, seq=10, width=8, heads=2, mlp=16, depth=2):
    rng = np.random.default_rng(seed)
    d = width // heads
    tree = {
        "Embed_0": {
            "word_embeddings": {"embedding": _rng_array(rng, vocab, width)},
            "position_embeddings": {"embedding": _rng_array(rng, seq, width)},
            "embeddings_ln": _norm(rng, width),
        },
        "MlmLayer_0": {
            "mlm_dense": {"kernel": _rng_array(rng, width, width), "bias": _rng_array(rng, width)},
            "mlm_ln": _norm(rng, width),
            "mlm_bias": {"bias": _rng_array(rng, vocab)},
        },
    }
    for i in range(depth):
        att = {
            n: {"kernel": _rng_array(rng, width, heads, d), "bias": _rng_array(rng, heads, d)}
            for n in ("query", "key", "value")
        }
        att["out"] = {"kernel": _rng_array(rng, heads, d, width), "bias": _rng_array(rng, width)}
        tree[f"TransformerLayer_{i}"] = {
            "Attention_0": {"self_attention": att, "attention_output_ln": _norm(rng, width)},
            "Mlp_0": {
                "intermediate_output": {
                    "kernel": _rng_array(rng, width, mlp),
                    "bias": _rng_array(rng, mlp),
                },
                "layer_output": {
                    "kernel": _rng_array(rng, mlp, width),
                    "bias": _rng_array(rng, width),
                },
                "layer_output_ln": _norm(rng, width),
            },
        }
    return {"params": tree}


# --- numpy forward passes (NHWC, as Flax) ---------------------------------------------------
def conv(x, p):
    """'SAME' convolution of NHWC x with an HWIO kernel (+ bias)."""
    k = p["kernel"].astype(np.float64)
    kh = k.shape[0]
    pad = kh // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    win = sliding_window_view(xp, (kh, kh), axis=(1, 2))  # N, H, W, C, kh, kw
    y = np.einsum("nhwcij,ijco->nhwo", win, k)
    return y + p["bias"] if "bias" in p else y


def group_norm(x, p, groups, eps=1e-6):
    n, h, w, c = x.shape
    g = x.reshape(n, h, w, groups, c // groups)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    g = (g - mean) / np.sqrt(var + eps)
    return g.reshape(n, h, w, c) * p["scale"] + p["bias"]


def swish(x):
    return x / (1 + np.exp(-x))


def resblock(x, p, groups):
    h = conv(swish(group_norm(x, p["GroupNorm_0"], groups)), p["Conv_0"])
    h = conv(swish(group_norm(h, p["GroupNorm_1"], groups)), p["Conv_1"])
    if "Conv_2" in p:
        return h + conv(h, p["Conv_2"])  # the official shortcut quirk
    return x + h


def _blocks(prefix_tree, start, count):
    return [prefix_tree[f"ResBlock_{k}"] for k in range(start, start + count)]


def tokenizer_forward(tree, images, mults, res, groups):
    """Encoder → nearest codes → decoder on NCHW images; returns (codes, recon NCHW)."""
    p = tree["params"]
    enc, dec, book = p["encoder"], p["decoder"], p["quantizer"]["codebook"].astype(np.float64)
    x = images.transpose(0, 2, 3, 1).astype(np.float64)
    h = conv(x, enc["Conv_0"])
    k = 0
    for level in range(len(mults)):
        for blk in _blocks(enc, k, res):
            h = resblock(h, blk, groups)
        k += res
        if level < len(mults) - 1:
            n, hh, ww, c = h.shape
            h = h.reshape(n, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))
    for blk in _blocks(enc, k, res):
        h = resblock(h, blk, groups)
    z = conv(swish(group_norm(h, enc["GroupNorm_0"], groups)), enc["Conv_1"])
    d = ((z[..., None, :] - book) ** 2).sum(-1)
    codes = d.argmin(-1)
    h = conv(book[codes], dec["Conv_0"])
    k, c = 0, 1
    for blk in _blocks(dec, k, res):
        h = resblock(h, blk, groups)
    k += res
    for level in reversed(range(len(mults))):
        for blk in _blocks(dec, k, res):
            h = resblock(h, blk, groups)
        k += res
        if level > 0:
            h = conv(h.repeat(2, axis=1).repeat(2, axis=2), dec[f"Conv_{c}"])
            c += 1
    out = conv(swish(group_norm(h, dec["GroupNorm_0"], groups)), dec[f"Conv_{c}"])
    return codes, out.transpose(0, 3, 1, 2)


def layer_norm(x, p, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def transformer_forward(tree, tokens):
    p = tree["params"]
    emb = p["Embed_0"]
    table = emb["word_embeddings"]["embedding"].astype(np.float64)
    x = table[tokens] + emb["position_embeddings"]["embedding"][: tokens.shape[1]]
    x = layer_norm(x, emb["embeddings_ln"])
    i = 0
    while f"TransformerLayer_{i}" in p:
        layer = p[f"TransformerLayer_{i}"]
        att = layer["Attention_0"]["self_attention"]
        q, k, v = (
            np.einsum("bld,dhk->blhk", x, att[n]["kernel"]) + att[n]["bias"]
            for n in ("query", "key", "value")
        )
        scores = np.einsum("bqhk,bshk->bhqs", q, k) / math.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        y = np.einsum("bhqs,bshk->bqhk", probs, v)
        y = np.einsum("bqhk,hkd->bqd", y, att["out"]["kernel"]) + att["out"]["bias"]
        h = layer_norm(x + y, layer["Attention_0"]["attention_output_ln"])
        mlp = layer["Mlp_0"]
        m = gelu_tanh(h @ mlp["intermediate_output"]["kernel"] + mlp["intermediate_output"]["bias"])
        m = m @ mlp["layer_output"]["kernel"] + mlp["layer_output"]["bias"]
        x = layer_norm(h + m, mlp["layer_output_ln"])
        i += 1
    head = p["MlmLayer_0"]
    h = gelu_tanh(x @ head["mlm_dense"]["kernel"] + head["mlm_dense"]["bias"])
    h = layer_norm(h, head["mlm_ln"])
    return h @ table.T + head["mlm_bias"]["bias"]
