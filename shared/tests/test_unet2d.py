"""The diffusers-layout UNet2DModel: folder round trip, deprecated attention keys, refusals."""

import json

import pytest
import torch
from safetensors.torch import save_file

from diffrepro.core.models.unet2d import UNet2DConfig, UNet2DModel, rename_deprecated_attention

torch.set_num_threads(1)
CONFIG = dict(
    sample_size=16,
    block_out_channels=(16, 32),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    attention_head_dim=8,
    norm_num_groups=4,
)


def save_folder(folder, model, config, rename=None):
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if rename:
        state = {rename(k): v for k, v in state.items()}
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **config}))


def test_folder_round_trip(tmp_path):
    torch.manual_seed(0)
    model = UNet2DModel(UNet2DConfig(**CONFIG)).eval()
    save_folder(tmp_path / "unet", model, CONFIG)
    loaded = UNet2DModel.from_pretrained(tmp_path / "unet")
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([1, 500])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), model(x, t), rtol=1e-5, atol=1e-6)
    assert model(x, t).shape == x.shape


def test_deprecated_attention_keys_load(tmp_path):
    torch.manual_seed(1)
    model = UNet2DModel(UNet2DConfig(**CONFIG)).eval()
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}

    def deprecate(key):
        for new, legacy in old.items():
            key = key.replace(f".{new}.", f".{legacy}.")
        return key

    assert rename_deprecated_attention({deprecate(k): 0 for k in model.state_dict()}).keys() == (
        model.state_dict().keys()
    )
    save_folder(tmp_path / "unet", model, CONFIG, rename=deprecate)
    loaded = UNet2DModel.from_pretrained(tmp_path / "unet")
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([9])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), model(x, t), rtol=1e-5, atol=1e-6)


def test_attention_is_scaled_dot_product_with_residual():
    torch.manual_seed(2)
    model = UNet2DModel(UNet2DConfig(**CONFIG))
    attn = model.down_blocks[1].attentions[0]
    x = torch.randn(1, 32, 4, 4, dtype=torch.float64)
    attn = attn.double()
    u = attn.group_norm(x).reshape(1, 32, 16).transpose(1, 2)
    q, k, v = attn.to_q(u), attn.to_k(u), attn.to_v(u)
    heads = []
    for h in range(4):
        s = slice(8 * h, 8 * h + 8)
        p = torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 8**0.5, dim=-1)
        heads.append(p @ v[..., s])
    want = attn.to_out[0](torch.cat(heads, -1)).transpose(1, 2).reshape(1, 32, 4, 4) + x
    torch.testing.assert_close(attn(x), want)


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"time_embedding_type": "fourier"}, "time_embedding_type"),
        ({"down_block_types": ["SkipDownBlock2D", "DownBlock2D"]}, "unsupported block"),
        ({"_class_name": "UNet2DConditionModel"}, "not a UNet2DModel"),
    ],
)
def test_refused_configs(tmp_path, extra, match):
    model = UNet2DModel(UNet2DConfig(**CONFIG))
    save_folder(tmp_path / "unet", model, {**CONFIG, **extra})
    with pytest.raises(ValueError, match=match):
        UNet2DModel.from_pretrained(tmp_path / "unet")
