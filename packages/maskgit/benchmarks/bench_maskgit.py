"""MaskGIT decoding speed, as ratios measured in one run (``nox -s bench``).

1. MaskGIT parallel decoding at T = 8 against the raster-order AR baseline of the same
   transformer (causal mask, N passes), per image, for two widths / grid sizes.
2. Against diffusers' aMUSEd-style masked decoding (``UVit2DModel`` + ``AmusedScheduler``)
   built offline with random weights at a comparable size, when diffusers is installed
   (the ``parity`` group); otherwise the row says why it is missing.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from diffrepro.core.benchmark import measure, write_results
from diffrepro.maskgit.decoding import DecodeConfig, decode, decode_autoregressive
from diffrepro.maskgit.transformer import MaskGitTransformer, TransformerConfig

SIZES = {
    "N=64, 128 wide, 4 layers": TransformerConfig(
        codebook_size=128, num_classes=8, latent_size=8, width=128, depth=4, heads=4, mlp_dim=512
    ),
    "N=256, 256 wide, 4 layers": TransformerConfig(
        codebook_size=1024,
        num_classes=10,
        latent_size=16,
        width=256,
        depth=4,
        heads=8,
        mlp_dim=1024,
    ),
}


def start(cfg: TransformerConfig, batch: int, device: str) -> torch.Tensor:
    tokens = torch.full((batch, cfg.seq_len), cfg.mask_id, device=device)
    tokens[:, 0] = cfg.class_id(0)
    return tokens


def maskgit_vs_ar(name: str, cfg: TransformerConfig, batch: int, device: str) -> dict:
    torch.manual_seed(0)
    model = MaskGitTransformer(cfg).to(device).eval()
    ar = MaskGitTransformer(dataclasses.replace(cfg, causal=True)).to(device).eval()
    tokens = start(cfg, batch, device)
    kw = {"mask_id": cfg.mask_id, "codebook_size": cfg.codebook_size}
    gen = torch.Generator(device).manual_seed(0)
    mg = measure(
        lambda: decode(model, tokens, config=DecodeConfig(8), generator=gen, **kw),
        device=device,
        repeat=3,
    )
    arm = measure(
        lambda: decode_autoregressive(ar, tokens, generator=gen, **kw),
        device=device,
        warmup=0,
        repeat=1,
    )
    return {
        "case": name,
        "baseline": "AR raster (same transformer)",
        "batch": batch,
        "maskgit_s_per_image": mg["time_s"] / batch,
        "baseline_s_per_image": arm["time_s"] / batch,
        "passes": f"8 vs {cfg.num_tokens}",
        "speedup": arm["time_s"] / mg["time_s"],
    }


def amused(name: str, cfg: TransformerConfig, batch: int, device: str) -> dict:
    row = {
        "case": name,
        "baseline": "diffusers UVit2DModel + AmusedScheduler, T = 8",
        "batch": batch,
    }
    try:
        from diffusers import AmusedScheduler, UVit2DModel
    except ImportError as err:
        return {**row, "note": f"not measured: diffusers is not installed ({err})"}
    torch.manual_seed(0)
    side = cfg.latent_size
    uvit = (
        UVit2DModel(
            hidden_size=cfg.width,
            cond_embed_dim=cfg.width,
            micro_cond_encode_dim=16,
            micro_cond_embed_dim=80,
            encoder_hidden_size=cfg.width,
            vocab_size=cfg.codebook_size + 1,
            codebook_size=cfg.codebook_size,
            in_channels=cfg.width,
            block_out_channels=cfg.width,
            num_res_blocks=1,
            block_num_heads=cfg.heads,
            num_hidden_layers=cfg.depth,
            num_attention_heads=cfg.heads,
            intermediate_size=cfg.mlp_dim,
            sample_size=side,
        )
        .to(device)
        .eval()
    )
    scheduler = AmusedScheduler(mask_token_id=cfg.codebook_size)
    text = torch.randn(batch, 4, cfg.width, device=device)
    pooled = torch.randn(batch, cfg.width, device=device)
    micro = torch.zeros(batch, 5, device=device)
    gen = torch.Generator(device).manual_seed(0)

    @torch.no_grad()
    def run():
        scheduler.set_timesteps(8, device=device)
        latents = torch.full((batch, side, side), cfg.codebook_size, device=device)
        for t in scheduler.timesteps:
            logits = uvit(latents, text, pooled, micro)
            latents = scheduler.step(logits, t, latents, generator=gen).prev_sample
        return latents

    torch.manual_seed(0)
    model = MaskGitTransformer(cfg).to(device).eval()
    tokens = start(cfg, batch, device)
    kw = {"mask_id": cfg.mask_id, "codebook_size": cfg.codebook_size}
    mg = measure(
        lambda: decode(model, tokens, config=DecodeConfig(8), generator=gen, **kw), device=device
    )
    try:
        am = measure(run, device=device)
    except Exception as err:  # a diffusers API change must not hide the other rows
        return {**row, "note": f"not measured: {type(err).__name__}: {err}"}
    return {
        **row,
        "maskgit_s_per_image": mg["time_s"] / batch,
        "baseline_s_per_image": am["time_s"] / batch,
        "passes": "8 vs 8",
        "speedup": am["time_s"] / mg["time_s"],
        "note": "different network (U-ViT with conv blocks); same width, depth and T",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    rows = []
    with torch.no_grad():
        for name, cfg in SIZES.items():
            rows.append(maskgit_vs_ar(name, cfg, args.batch, args.device))
            rows.append(amused(name, cfg, args.batch, args.device))
    notes = (
        "speedup = baseline time / MaskGIT time, measured in this process. No KV cache on "
        "either side; the AR model is untrained (only its speed matters)."
    )
    print(write_results("maskgit_decoding", rows, notes=notes).read_text())


if __name__ == "__main__":
    main()
