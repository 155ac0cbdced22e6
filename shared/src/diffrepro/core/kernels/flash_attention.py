"""Fused attention in Triton (FlashAttention-2 algorithm), non-causal, for diffusion models.

softmax(q kᵀ · scale + bias) v with layout (B, H, N, d): any token counts (Nq may differ from
Nk), head_dim up to 128 (padded to a power of two >= 16 inside the tile and masked), an optional
additive bias with any strides (broadcast dims have stride 0) that also gets a gradient, and
fp32/fp16/bf16 inputs with fp32 accumulation.

Forward: one program per (query block, batch*head), online softmax over key blocks, stores the
log-sum-exp. Backward recomputes P from it: a dK/dV kernel (one program per key block, looping
over query blocks) and a dQ kernel (one program per query block, looping over key blocks, and
writing dS as the bias gradient when asked). No atomics, so results are deterministic.

The kernels are wrapped as the torch custom ops ``diffrepro::flash_attn_fwd`` and
``diffrepro::flash_attn_bwd`` with fake (shape) implementations and an autograd formula, so they
work with ``torch.compile``. Tiles are chosen in Python (``triton.autotune`` does not run under
the interpreter). Importing this module imports triton; ``diffrepro.core.attention`` does so
lazily.
"""

import torch
import triton
import triton.language as tl

from diffrepro.core.kernels.backend import interpreter_enabled

# fmt: off
# The kernels are formatted by hand (one stride group per line).


@triton.jit
def _load_tile(base, rows, n_rows, stride_r, offs_d, head_dim, stride_d, UPCAST: tl.constexpr):
    """A (rows × BLOCK_D) tile, zero outside the token count and the head dim."""
    mask = (rows[:, None] < n_rows) & (offs_d[None, :] < head_dim)
    tile = tl.load(base + rows[:, None] * stride_r + offs_d[None, :] * stride_d,
                   mask=mask, other=0.0)
    return tile.to(tl.float32) if UPCAST else tile


@triton.jit
def _scores(q, k, bias_base, rows, cols, stride_bm, stride_bn, seq_q, seq_k, scale,
            HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr):
    """scale · q kᵀ + bias in fp32, with -inf on padded keys."""
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale
    if HAS_BIAS:
        mask = (rows[:, None] < seq_q) & (cols[None, :] < seq_k)
        bias = tl.load(bias_base + rows[:, None] * stride_bm + cols[None, :] * stride_bn,
                       mask=mask, other=0.0)
        s += bias.to(tl.float32)
    return tl.where(cols[None, :] < seq_k, s, -float("inf"))


@triton.jit
def _store_tile(base, rows, n_rows, stride_r, offs_d, head_dim, stride_d, tile):
    mask = (rows[:, None] < n_rows) & (offs_d[None, :] < head_dim)
    tl.store(base + rows[:, None] * stride_r + offs_d[None, :] * stride_d,
             tile.to(base.dtype.element_ty), mask=mask)


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, Bias, Out, Lse,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_bb, stride_bh, stride_bm, stride_bn,
    stride_ob, stride_oh, stride_om, stride_od,
    num_heads, seq_q, seq_k, head_dim, scale,
    HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_bh = tl.program_id(1)
    b = (pid_bh // num_heads).to(tl.int64)
    h = (pid_bh % num_heads).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_tile(Q + b * stride_qb + h * stride_qh, rows, seq_q, stride_qm,
                   offs_d, head_dim, stride_qd, UPCAST)
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    bias_base = Bias + b * stride_bb + h * stride_bh

    m_i = tl.full([BLOCK_M], -float("inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, seq_k, BLOCK_N):
        cols = start_n + offs_n
        k = _load_tile(k_base, cols, seq_k, stride_kn, offs_d, head_dim, stride_kd, UPCAST)
        v = _load_tile(v_base, cols, seq_k, stride_vn, offs_d, head_dim, stride_vd, UPCAST)
        s = _scores(q, k, bias_base, rows, cols, stride_bm, stride_bn, seq_q, seq_k, scale,
                    HAS_BIAS, PRECISION)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == -float("inf"), 0.0, m_new)  # every score so far is -inf
        p = tl.exp(s - m_safe[:, None])
        alpha = tl.exp(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new

    empty = l_i == 0.0  # a fully masked row: output 0, and lse = +inf makes P = 0 in backward
    l_safe = tl.where(empty, 1.0, l_i)
    _store_tile(Out + b * stride_ob + h * stride_oh, rows, seq_q, stride_om,
                offs_d, head_dim, stride_od, acc / l_safe[:, None])
    lse = tl.where(empty, float("inf"), m_i + tl.log(l_safe))
    tl.store(Lse + pid_bh.to(tl.int64) * seq_q + rows, lse, mask=rows < seq_q)


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q, K, V, Bias, DO, Lse, Delta, DK, DV,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_bb, stride_bh, stride_bm, stride_bn,
    stride_gb, stride_gh, stride_gm, stride_gd,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    num_heads, seq_q, seq_k, head_dim, scale,
    HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_bh = tl.program_id(1)
    b = (pid_bh // num_heads).to(tl.int64)
    h = (pid_bh % num_heads).to(tl.int64)
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    k = _load_tile(K + b * stride_kb + h * stride_kh, cols, seq_k, stride_kn,
                   offs_d, head_dim, stride_kd, UPCAST)
    v = _load_tile(V + b * stride_vb + h * stride_vh, cols, seq_k, stride_vn,
                   offs_d, head_dim, stride_vd, UPCAST)
    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_gb + h * stride_gh
    bias_base = Bias + b * stride_bb + h * stride_bh
    row_base = pid_bh.to(tl.int64) * seq_q

    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for start_m in range(0, seq_q, BLOCK_M):
        rows = start_m + offs_m
        q = _load_tile(q_base, rows, seq_q, stride_qm, offs_d, head_dim, stride_qd, UPCAST)
        do = _load_tile(do_base, rows, seq_q, stride_gm, offs_d, head_dim, stride_gd, UPCAST)
        lse = tl.load(Lse + row_base + rows, mask=rows < seq_q, other=float("inf"))
        delta = tl.load(Delta + row_base + rows, mask=rows < seq_q, other=0.0)
        s = _scores(q, k, bias_base, rows, cols, stride_bm, stride_bn, seq_q, seq_k, scale,
                    HAS_BIAS, PRECISION)
        p = tl.exp(s - lse[:, None])
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)

    # dk and dv are fresh contiguous tensors of the same shape, so they share strides
    _store_tile(DK + b * stride_dkb + h * stride_dkh, cols, seq_k, stride_dkn,
                offs_d, head_dim, stride_dkd, dk * scale)
    _store_tile(DV + b * stride_dkb + h * stride_dkh, cols, seq_k, stride_dkn,
                offs_d, head_dim, stride_dkd, dv)


@triton.jit
def _attn_bwd_dq_kernel(
    Q, K, V, Bias, DO, Lse, Delta, DQ, DBias,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_bb, stride_bh, stride_bm, stride_bn,
    stride_gb, stride_gh, stride_gm, stride_gd,
    stride_dqb, stride_dqh, stride_dqm, stride_dqd,
    num_heads, seq_q, seq_k, head_dim, scale,
    HAS_BIAS: tl.constexpr, STORE_DBIAS: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid_bh = tl.program_id(1)
    b = (pid_bh // num_heads).to(tl.int64)
    h = (pid_bh % num_heads).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_tile(Q + b * stride_qb + h * stride_qh, rows, seq_q, stride_qm,
                   offs_d, head_dim, stride_qd, UPCAST)
    do = _load_tile(DO + b * stride_gb + h * stride_gh, rows, seq_q, stride_gm,
                    offs_d, head_dim, stride_gd, UPCAST)
    row_base = pid_bh.to(tl.int64) * seq_q
    lse = tl.load(Lse + row_base + rows, mask=rows < seq_q, other=float("inf"))
    delta = tl.load(Delta + row_base + rows, mask=rows < seq_q, other=0.0)
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    bias_base = Bias + b * stride_bb + h * stride_bh
    dbias_base = DBias + (row_base + rows[:, None]) * seq_k  # contiguous (B, H, Nq, Nk)

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start_n in range(0, seq_k, BLOCK_N):
        cols = start_n + offs_n
        k = _load_tile(k_base, cols, seq_k, stride_kn, offs_d, head_dim, stride_kd, UPCAST)
        v = _load_tile(v_base, cols, seq_k, stride_vn, offs_d, head_dim, stride_vd, UPCAST)
        s = _scores(q, k, bias_base, rows, cols, stride_bm, stride_bn, seq_q, seq_k, scale,
                    HAS_BIAS, PRECISION)
        p = tl.exp(s - lse[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        if STORE_DBIAS:
            tl.store(dbias_base + cols[None, :], ds,
                     mask=(rows[:, None] < seq_q) & (cols[None, :] < seq_k))
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)

    _store_tile(DQ + b * stride_dqb + h * stride_dqh, rows, seq_q, stride_dqm,
                offs_d, head_dim, stride_dqd, dq * scale)


# fmt: on


def _tiles(seq_q: int, seq_k: int, head_dim: int, device: torch.device) -> dict:
    """Tile sizes and launch options, chosen in Python (no autotune)."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    if device.type == "cpu":  # the interpreter runs programs one by one: few, large tiles
        cap_m = cap_n = 128
        launch = {}
    else:
        cap_m, cap_n = (128, 64) if block_d <= 64 else (64, 64)
        launch = {"num_warps": 4 if block_d <= 64 else 8, "num_stages": 2}
    block_m = min(cap_m, max(16, triton.next_power_of_2(seq_q)))
    block_n = min(cap_n, max(16, triton.next_power_of_2(seq_k)))
    return {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": block_d, **launch}


def _bwd_tiles(seq_q: int, seq_k: int, head_dim: int, device: torch.device) -> dict:
    tiles = _tiles(seq_q, seq_k, head_dim, device)
    if device.type != "cpu":  # backward holds twice the accumulators: smaller query tiles
        tiles["BLOCK_M"] = min(tiles["BLOCK_M"], 64 if tiles["BLOCK_D"] <= 64 else 32)
    return tiles


def _numerics(dtype: torch.dtype) -> dict:
    """Under the interpreter (which cannot multiply bf16) bf16 is upcast before tl.dot. fp32 dots
    are exact ("ieee") unless torch allows TF32 for CUDA matmuls; half dots keep the default."""
    interpreted = interpreter_enabled()
    exact = dtype == torch.float32 and (interpreted or not torch.backends.cuda.matmul.allow_tf32)
    return {
        "UPCAST": dtype == torch.bfloat16 and interpreted,
        "PRECISION": "ieee" if exact else "tf32",
    }


def _qkv_bias_args(q, k, v, bias) -> tuple:
    """The bias pointer (q stands in when there is none) and the q, k, v, bias strides."""
    bias_strides = (0, 0, 0, 0) if bias is None else bias.stride()
    bias_ptr = q if bias is None else bias
    return bias_ptr, (*q.stride(), *k.stride(), *v.stride(), *bias_strides)


@torch.library.custom_op("diffrepro::flash_attn_fwd", mutates_args=())
def flash_attn_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention output (B, H, Nq, d) and its row log-sum-exp (B, H, Nq) in fp32."""
    batch, heads, seq_q, head_dim = q.shape
    seq_k = k.shape[2]
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = torch.empty((batch, heads, seq_q), device=q.device, dtype=torch.float32)
    tiles = _tiles(seq_q, seq_k, head_dim, q.device)
    bias_ptr, strides = _qkv_bias_args(q, k, v, bias)
    sizes = (heads, seq_q, seq_k, head_dim, scale)
    flags = {"HAS_BIAS": bias is not None, **_numerics(q.dtype), **tiles}
    grid = (triton.cdiv(seq_q, tiles["BLOCK_M"]), batch * heads)
    _attn_fwd_kernel[grid](q, k, v, bias_ptr, out, lse, *strides, *out.stride(), *sizes, **flags)
    return out, lse


@flash_attn_fwd.register_fake
def _(q, k, v, bias, scale):
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    return out, q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.custom_op("diffrepro::flash_attn_bwd", mutates_args=())
def flash_attn_bwd(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    bias_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dv, and the bias gradient dS in fp32 (B, H, Nq, Nk) (empty unless ``bias_grad``)."""
    batch, heads, seq_q, head_dim = q.shape
    seq_k = k.shape[2]
    delta = (grad_out.float() * out.float()).sum(-1)  # D_i = rowsum(dO ∘ O)
    dq, dk, dv = (torch.empty_like(t, memory_format=torch.contiguous_format) for t in (q, k, v))
    dbias_shape = (batch, heads, seq_q, seq_k) if bias_grad else (0,)
    dbias = torch.empty(dbias_shape, device=q.device, dtype=torch.float32)
    tiles = _bwd_tiles(seq_q, seq_k, head_dim, q.device)
    bias_ptr, strides = _qkv_bias_args(q, k, v, bias)
    strides = (*strides, *grad_out.stride())
    sizes = (heads, seq_q, seq_k, head_dim, scale)
    flags = {"HAS_BIAS": bias is not None, **_numerics(q.dtype), **tiles}
    inputs = (q, k, v, bias_ptr, grad_out, lse, delta)
    grid_k = (triton.cdiv(seq_k, tiles["BLOCK_N"]), batch * heads)
    _attn_bwd_dkdv_kernel[grid_k](*inputs, dk, dv, *strides, *dk.stride(), *sizes, **flags)
    grid_q = (triton.cdiv(seq_q, tiles["BLOCK_M"]), batch * heads)
    dbias_ptr = dbias if bias_grad else q
    _attn_bwd_dq_kernel[grid_q](
        *inputs, dq, dbias_ptr, *strides, *dq.stride(), *sizes, STORE_DBIAS=bias_grad, **flags
    )
    return dq, dk, dv, dbias


@flash_attn_bwd.register_fake
def _(grad_out, q, k, v, bias, out, lse, scale, bias_grad):
    batch, heads, seq_q, _ = q.shape
    dbias_shape = (batch, heads, seq_q, k.shape[2]) if bias_grad else (0,)
    return (
        torch.empty_like(q, memory_format=torch.contiguous_format),
        torch.empty_like(k, memory_format=torch.contiguous_format),
        torch.empty_like(v, memory_format=torch.contiguous_format),
        q.new_empty(dbias_shape, dtype=torch.float32),
    )


def _setup_context(ctx, inputs, output):
    q, k, v, bias, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, bias, out, lse)
    ctx.scale = scale
    ctx.bias_grad = bias is not None and ctx.needs_input_grad[3]


def _backward(ctx, grad_out, grad_lse):
    q, k, v, bias, out, lse = ctx.saved_tensors
    dq, dk, dv, dbias = flash_attn_bwd(grad_out, q, k, v, bias, out, lse, ctx.scale, ctx.bias_grad)
    return dq, dk, dv, dbias.to(bias.dtype) if ctx.bias_grad else None, None


flash_attn_fwd.register_autograd(_backward, setup_context=_setup_context)


def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """softmax(q kᵀ · scale + bias) v with the Triton kernels.

    ``bias`` broadcasts to (B, H, Nq, Nk); it is passed as an expanded view (no copy), and autograd
    sums its gradient back over the broadcast dims.
    """
    if bias is not None:
        bias = bias.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    return flash_attn_fwd(q, k, v, bias, scale)[0]
