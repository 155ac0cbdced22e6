"""Fused GroupNorm + SiLU in Triton: y = z·sigmoid(z), z = γ_c (x - μ_g)/sqrt(σ²_g + eps) + β_c.

One program per (sample, group) walks the group's (channels × positions) tile by tile: two
passes for the mean and the variance (fp32, two-pass for accuracy) and one to write y. The
backward recomputes z from the saved mean and 1/std, with dz = dy·σ(z)(1 + z(1 - σ(z))), then
the GroupNorm backward dx = rstd·(g - mean(g) - x̂·mean(g·x̂)) with g = γ·dz. Per-(sample, channel)
partial sums of dz·x̂ and dz are written by each program and summed over the batch in torch, so
dγ and dβ are deterministic (no atomics).

Registered as the torch custom ops ``diffrepro::group_norm_silu_fwd`` / ``_bwd`` with fake and
autograd implementations. Importing this module imports triton.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _offsets(offs_c, hw, cpg, npos):
    """Offsets and mask of a (channels × positions) tile inside one contiguous (cpg, npos) group."""
    return offs_c[:, None] * npos + hw[None, :], (offs_c[:, None] < cpg) & (hw[None, :] < npos)


@triton.jit
def _affine(W, B, group, offs_c, cpg):
    channels = group * cpg + offs_c
    weight = tl.load(W + channels, mask=offs_c < cpg, other=0.0).to(tl.float32)
    bias = tl.load(B + channels, mask=offs_c < cpg, other=0.0).to(tl.float32)
    return weight[:, None], bias[:, None]


@triton.jit
def _gn_silu_fwd_kernel(
    X, Y, W, B, Mean, Rstd, num_groups, cpg, npos, eps,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)  # sample * num_groups + group; cpg channels per group, npos positions
    base = pid.to(tl.int64) * cpg * npos  # X and Y are contiguous (N, C, positions)
    X += base
    Y += base
    offs_c = tl.arange(0, BLOCK_C)
    offs_hw = tl.arange(0, BLOCK_HW)
    count = cpg * npos

    acc = tl.zeros([BLOCK_C, BLOCK_HW], tl.float32)
    for start in range(0, npos, BLOCK_HW):
        offs, mask = _offsets(offs_c, start + offs_hw, cpg, npos)
        acc += tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(tl.sum(acc, 1), 0) / count
    acc = tl.zeros([BLOCK_C, BLOCK_HW], tl.float32)
    for start in range(0, npos, BLOCK_HW):
        offs, mask = _offsets(offs_c, start + offs_hw, cpg, npos)
        x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
        centred = tl.where(mask, x - mean, 0.0)
        acc += centred * centred
    rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(acc, 1), 0) / count + eps)

    weight, bias = _affine(W, B, pid % num_groups, offs_c, cpg)
    for start in range(0, npos, BLOCK_HW):
        offs, mask = _offsets(offs_c, start + offs_hw, cpg, npos)
        x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
        z = (x - mean) * rstd * weight + bias
        tl.store(Y + offs, (z * tl.sigmoid(z)).to(Y.dtype.element_ty), mask=mask)
    tl.store(Mean + pid, mean)
    tl.store(Rstd + pid, rstd)


@triton.jit
def _gn_silu_bwd_kernel(
    DY, X, DX, W, B, Mean, Rstd, DWPartial, DBPartial, num_channels, num_groups, cpg, npos,
    BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    group = pid % num_groups
    base = pid.to(tl.int64) * cpg * npos
    X += base
    DY += base
    DX += base
    offs_c = tl.arange(0, BLOCK_C)
    offs_hw = tl.arange(0, BLOCK_HW)
    count = cpg * npos
    mean = tl.load(Mean + pid)
    rstd = tl.load(Rstd + pid)
    weight, bias = _affine(W, B, group, offs_c, cpg)

    sum_dz = tl.zeros([BLOCK_C, BLOCK_HW], tl.float32)
    sum_dz_xhat = tl.zeros([BLOCK_C, BLOCK_HW], tl.float32)
    for start in range(0, npos, BLOCK_HW):
        offs, mask = _offsets(offs_c, start + offs_hw, cpg, npos)
        x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
        x_hat = tl.where(mask, (x - mean) * rstd, 0.0)
        z = x_hat * weight + bias
        sig = tl.sigmoid(z)
        dz = dy * sig * (1.0 + z * (1.0 - sig))
        sum_dz += dz
        sum_dz_xhat += dz * x_hat
    dbias_c = tl.sum(sum_dz, 1)  # per channel of this sample: dβ and dγ partial sums
    dweight_c = tl.sum(sum_dz_xhat, 1)
    partial = (pid // num_groups).to(tl.int64) * num_channels + group * cpg + offs_c
    tl.store(DBPartial + partial, dbias_c, mask=offs_c < cpg)
    tl.store(DWPartial + partial, dweight_c, mask=offs_c < cpg)
    mean_g = tl.sum(dbias_c * tl.sum(weight, 1), 0) / count  # g = γ dz
    mean_g_xhat = tl.sum(dweight_c * tl.sum(weight, 1), 0) / count

    for start in range(0, npos, BLOCK_HW):
        offs, mask = _offsets(offs_c, start + offs_hw, cpg, npos)
        x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
        x_hat = (x - mean) * rstd
        z = x_hat * weight + bias
        sig = tl.sigmoid(z)
        g = dy * sig * (1.0 + z * (1.0 - sig)) * weight
        dx = rstd * (g - mean_g - x_hat * mean_g_xhat)
        tl.store(DX + offs, dx.to(DX.dtype.element_ty), mask=mask)


def _tiles(channels_per_group: int, num_positions: int, device: torch.device) -> dict:
    """A (channels × positions) tile of about 4096 elements on GPU, 16384 under the interpreter."""
    block_c = triton.next_power_of_2(channels_per_group)
    budget = 16384 if device.type == "cpu" else 4096
    block_hw = min(triton.next_power_of_2(num_positions), max(16, budget // block_c))
    launch = {} if device.type == "cpu" else {"num_warps": 4 if block_c * block_hw <= 4096 else 8}
    return {"BLOCK_C": block_c, "BLOCK_HW": block_hw, **launch}


@torch.library.custom_op("diffrepro::group_norm_silu_fwd", mutates_args=())
def group_norm_silu_fwd(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_groups: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y (x's shape and dtype, contiguous), and the per-(sample, group) mean and 1/std in fp32."""
    x3 = x.reshape(x.shape[0], x.shape[1], -1).contiguous()
    samples, channels, positions = x3.shape
    y = torch.empty_like(x3)
    mean = torch.empty((samples, num_groups), device=x.device, dtype=torch.float32)
    rstd = torch.empty_like(mean)
    cpg = channels // num_groups
    tiles = _tiles(cpg, positions, x.device)
    grid = (samples * num_groups,)
    _gn_silu_fwd_kernel[grid](
        x3, y, weight, bias, mean, rstd, num_groups, cpg, positions, eps, **tiles
    )
    return y.view(x.shape), mean, rstd


@group_norm_silu_fwd.register_fake
def _(x, weight, bias, num_groups, eps):
    stats = x.new_empty((x.shape[0], num_groups), dtype=torch.float32)
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        stats,
        torch.empty_like(stats),
    )


@torch.library.custom_op("diffrepro::group_norm_silu_bwd", mutates_args=())
def group_norm_silu_bwd(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    num_groups: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dx (x's dtype), dweight and dbias (fp32, per channel)."""
    x3 = x.reshape(x.shape[0], x.shape[1], -1).contiguous()
    dy3 = grad_y.reshape(x3.shape).contiguous()
    samples, channels, positions = x3.shape
    dx = torch.empty_like(x3)
    dw_partial = torch.empty((samples, channels), device=x.device, dtype=torch.float32)
    db_partial = torch.empty_like(dw_partial)
    cpg = channels // num_groups
    stats = (mean, rstd, dw_partial, db_partial)
    sizes = (channels, num_groups, cpg, positions)
    grid = (samples * num_groups,)
    _gn_silu_bwd_kernel[grid](
        dy3, x3, dx, weight, bias, *stats, *sizes, **_tiles(cpg, positions, x.device)
    )
    return dx.view(x.shape), dw_partial.sum(0), db_partial.sum(0)


@group_norm_silu_bwd.register_fake
def _(grad_y, x, weight, bias, mean, rstd, num_groups):
    per_channel = x.new_empty((x.shape[1],), dtype=torch.float32)
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        per_channel,
        torch.empty_like(per_channel),
    )


def _setup_context(ctx, inputs, output):
    x, weight, bias, num_groups, _ = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.num_groups = num_groups


def _backward(ctx, grad_y, grad_mean, grad_rstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    dx, dweight, dbias = group_norm_silu_bwd(grad_y, x, weight, bias, mean, rstd, ctx.num_groups)
    return dx, dweight.to(weight.dtype), dbias.to(bias.dtype), None, None


group_norm_silu_fwd.register_autograd(_backward, setup_context=_setup_context)


def group_norm_silu_triton(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """SiLU(GroupNorm(x)) with the Triton kernels; x is (N, C, *), C divisible by num_groups."""
    channels = x.shape[1]
    if weight is None:
        weight = x.new_ones(channels, dtype=torch.float32)
    if bias is None:
        bias = x.new_zeros(channels, dtype=torch.float32)
    return group_norm_silu_fwd(x, weight, bias, num_groups, eps)[0]
