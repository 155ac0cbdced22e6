"""The pixel UNet against guided-diffusion's naming rules, written here independently."""

import dataclasses
from pathlib import Path

import pytest
import torch

from diffrepro.core.checkpoints import load_state_dict
from diffrepro.core.models.unet import (
    PRESETS,
    UNetConfig,
    UNetModel,
    load_guided_diffusion,
    load_unet,
    save_unet,
    unet_preset,
)


def official_state_shapes(cfg: UNetConfig) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of guided-diffusion's ``UNetModel.state_dict()`` for ``cfg``.

    Follows guided_diffusion/unet.py: ``time_embed.{0,2}``, ``label_emb``, ``input_blocks`` (conv,
    then per level ``num_res_blocks`` × [ResBlock, AttentionBlock?] and a down block),
    ``middle_block`` (ResBlock, AttentionBlock, ResBlock), ``output_blocks`` (per level
    ``num_res_blocks + 1`` × [ResBlock, AttentionBlock?, up block at the level's end]),
    ``out.{0,2}``.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    emb = 4 * cfg.model_channels

    def affine(prefix: str, w: tuple[int, ...]) -> None:
        shapes[prefix + ".weight"] = w
        shapes[prefix + ".bias"] = (w[0],)

    def resblock(prefix: str, cin: int, cout: int) -> None:
        affine(prefix + ".in_layers.0", (cin,))
        affine(prefix + ".in_layers.2", (cout, cin, 3, 3))
        affine(prefix + ".emb_layers.1", (cout * (2 if cfg.use_scale_shift_norm else 1), emb))
        affine(prefix + ".out_layers.0", (cout,))
        affine(prefix + ".out_layers.3", (cout, cout, 3, 3))
        if cin != cout:
            affine(prefix + ".skip_connection", (cout, cin, 1, 1))

    def attention(prefix: str, c: int) -> None:
        affine(prefix + ".norm", (c,))
        affine(prefix + ".qkv", (3 * c, c, 1))
        affine(prefix + ".proj_out", (c, c, 1))

    affine("time_embed.0", (emb, cfg.model_channels))
    affine("time_embed.2", (emb, emb))
    if cfg.num_classes is not None:
        shapes["label_emb.weight"] = (cfg.num_classes, emb)
    widths = [int(m * cfg.model_channels) for m in cfg.channel_mult]
    affine("input_blocks.0.0", (widths[0], cfg.in_channels + cfg.cond_channels, 3, 3))
    attn_at = {cfg.image_size // r for r in cfg.attention_resolutions}
    block, ch, factor, skips = 1, widths[0], 1, [widths[0]]
    for level, width in enumerate(widths):
        for _ in range(cfg.num_res_blocks):
            resblock(f"input_blocks.{block}.0", ch, width)
            ch = width
            if factor in attn_at:
                attention(f"input_blocks.{block}.1", ch)
            skips.append(ch)
            block += 1
        if level < len(widths) - 1:
            if cfg.resblock_updown:
                resblock(f"input_blocks.{block}.0", ch, ch)
            elif cfg.conv_resample:
                affine(f"input_blocks.{block}.0.op", (ch, ch, 3, 3))
            skips.append(ch)
            block, factor = block + 1, factor * 2
    resblock("middle_block.0", ch, ch)
    attention("middle_block.1", ch)
    resblock("middle_block.2", ch, ch)
    block = 0
    for level in reversed(range(len(widths))):
        for i in range(cfg.num_res_blocks + 1):
            resblock(f"output_blocks.{block}.0", ch + skips.pop(), widths[level])
            ch, sub = widths[level], 1
            if factor in attn_at:
                attention(f"output_blocks.{block}.1", ch)
                sub = 2
            if level > 0 and i == cfg.num_res_blocks:
                if cfg.resblock_updown:
                    resblock(f"output_blocks.{block}.{sub}", ch, ch)
                elif cfg.conv_resample:
                    affine(f"output_blocks.{block}.{sub}.conv", (ch, ch, 3, 3))
                factor //= 2
            block += 1
    affine("out.0", (ch,))
    affine("out.2", (cfg.output_channels, ch, 3, 3))
    return shapes


VARIANTS = {
    **PRESETS,
    "tiny_class_cond_plain_resample": unet_preset(
        "tiny", num_classes=5, resblock_updown=False, learn_sigma=True, cond_channels=2
    ),
    "tiny_new_order_three_levels": unet_preset(
        "tiny",
        channel_mult=(1, 2, 2),
        num_res_blocks=2,
        use_new_attention_order=True,
        attention_resolutions=(8, 4),
    ),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_official_keys_and_shapes_load_without_mismatch(name: str) -> None:
    cfg = VARIANTS[name]
    expected = official_state_shapes(cfg)
    # The big presets are built on the meta device (shapes only, no memory).
    with torch.device("meta" if cfg.image_size > 64 else "cpu"):
        model = UNetModel(cfg)
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert ours == expected
        load_state_dict(
            model,
            {k: torch.empty(s, dtype=torch.float16) for k, s in expected.items()},
            source=name,
        )


def test_official_fp16_checkpoint_loads_into_fp32(tmp_path: Path) -> None:
    cfg = unet_preset("tiny", learn_sigma=True)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen).half() for k, s in official_state_shapes(cfg).items()}
    torch.save(state, tmp_path / "official.pt")
    model = load_guided_diffusion(tmp_path / "official.pt", cfg)
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, state[name].float())
    out = model(torch.randn(2, 3, 16, 16), torch.tensor([3, 900]))
    assert out.shape == (2, 6, 16, 16) and torch.isfinite(out).all()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt")
    assert torch.equal(
        load_guided_diffusion(tmp_path / "ddp.pt", cfg).out[2].weight, model.out[2].weight
    )


def test_wrong_checkpoint_names_every_problem(tmp_path: Path) -> None:
    cfg = unet_preset("tiny")
    state = {k: torch.zeros(s) for k, s in official_state_shapes(cfg).items()}
    del state["time_embed.0.weight"]
    state["out.2.weight"] = torch.zeros(6, 16, 3, 3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(
        ValueError, match=r"bad\.pt.*missing keys: time_embed\.0\.weight.*out\.2\.weight"
    ):
        load_guided_diffusion(tmp_path / "bad.pt", cfg)


def test_tiny_unet_outputs_zero_at_init_and_is_deterministic() -> None:
    torch.manual_seed(0)
    model = UNetModel(unet_preset("tiny", dropout=0.0))
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x, torch.tensor([10, 20])), torch.zeros_like(x))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.2)
    a, b = model(x, torch.tensor([10, 20])), model(x, torch.tensor(10))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


def test_forward_stages_compose_and_attention_bias_reaches_attention() -> None:
    torch.manual_seed(1)
    model = UNetModel(unet_preset("tiny", cond_channels=1, num_classes=3))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x, cond, t, y = (
        torch.randn(2, 3, 16, 16),
        torch.randn(2, 1, 16, 16),
        torch.tensor([1, 2]),
        torch.tensor([0, 2]),
    )
    emb = model.embed(t, y)
    h, skips = model.encode(torch.cat([x, cond], 1), emb)
    staged = model.output(model.decode(model.middle(h, emb), skips, emb))
    torch.testing.assert_close(model(x, t, y, cond=cond), staged)
    sizes = []

    def bias(height: int, width: int) -> torch.Tensor:
        sizes.append((height, width))
        return torch.zeros(1, 1, 1, height * width)

    torch.testing.assert_close(model(x, t, y, cond=cond, attn_bias=bias), staged)
    assert sorted(set(sizes)) == [(8, 8)] and len(sizes) == 4  # encoder, middle, 2 decoder blocks
    strong = lambda h, w: torch.randn(1, 1, h * w, h * w) * 5  # noqa: E731
    assert not torch.allclose(model(x, t, y, cond=cond, attn_bias=strong), staged)


def test_bad_inputs_raise_clear_errors() -> None:
    model = UNetModel(unet_preset("tiny"))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(1, 4, 16, 16), torch.tensor([1]))
    with pytest.raises(ValueError, match="multiples of 2"):
        model(torch.randn(1, 3, 15, 16), torch.tensor([1]))
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(1, 3, 16, 16), torch.tensor([1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown UNet preset"):
        unet_preset("imagenet")


def test_save_load_roundtrip_and_gradient_checkpointing(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = UNetModel(unet_preset("tiny", channel_mult=(1, 2, 2), dropout=0.0))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    save_unet(tmp_path / "unet.safetensors", model)
    again = load_unet(tmp_path / "unet.safetensors")
    assert again.config == model.config
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([5])
    assert torch.equal(again(x, t), model(x, t))
    checkpointed = UNetModel(dataclasses.replace(model.config, use_checkpoint=True))
    checkpointed.load_state_dict(model.state_dict())
    for net in (model, checkpointed):
        net.zero_grad()
        net(x, t).square().sum().backward()
    for (name, a), b in zip(model.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_decode_frees_each_skip_once_used() -> None:
    """decode pops the skips (as diffusers frees them): the forward's peak memory depends on it."""
    import weakref

    model = UNetModel(unet_preset("tiny")).eval()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([1, 2])
    with torch.no_grad():
        emb = model.embed(t)
        h, skips = model.encode(x, emb)
        refs = [weakref.ref(s) for s in skips]
        h = model.decode(model.middle(h, emb), skips, emb)
    assert skips == [] and all(r() is None for r in refs)
    with pytest.raises(ValueError, match="skips"):
        model.decode(h, [], emb)
