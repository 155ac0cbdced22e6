"""The benchmarks compare like with like: diffusers' models built from our configs have exactly
our parameter counts (ADM UNet <-> UNet2DModel through bench_unet.diffusers_config, SD UNet and
VAE through their shared config names), and the guard rejects a mismatch (nox -s parity)."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

import diffusers  # noqa: E402

from diffrepro.core.benchmark import assert_same_parameters  # noqa: E402
from diffrepro.core.models.autoencoder_kl import AutoencoderKL  # noqa: E402
from diffrepro.core.models.sd_export import config_dict  # noqa: E402
from diffrepro.core.models.sd_unet import UNet2DConditionModel  # noqa: E402
from diffrepro.core.models.unet import UNetConfig, UNetModel  # noqa: E402
from diffrepro.core.zoo.ddpm import DDPM_UNET  # noqa: E402
from diffrepro.core.zoo.t2i import T2I_CONFIG  # noqa: E402
from diffrepro.core.zoo.vae import VAE_CONFIG  # noqa: E402

pytestmark = pytest.mark.parity
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench_unet():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_unet", BENCH / "bench_unet.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


ADM_CONFIGS = {
    "zoo ddpm (resblock up/down)": DDPM_UNET,
    "zoo ddpm-cond": dataclasses.replace(DDPM_UNET, num_classes=5),
    "conv resampling, 2 attention levels": UNetConfig(
        image_size=16,
        model_channels=16,
        channel_mult=(1, 2, 2),
        num_res_blocks=1,
        attention_resolutions=(8, 4),
        num_head_channels=8,
        num_groups=8,
    ),
}


@pytest.mark.parametrize("name", sorted(ADM_CONFIGS))
def test_adm_unet_matches_unet2dmodel_parameter_for_parameter(name):
    config = ADM_CONFIGS[name]
    bench = _bench_unet()
    ours, theirs = UNetModel(config), diffusers.UNet2DModel(**bench.diffusers_config(config))
    assert assert_same_parameters(ours, theirs, name) > 0
    assert len(theirs.down_blocks) == len(config.channel_mult)


def test_without_attention_norm_groups_the_guard_fires():
    bench = _bench_unet()
    kwargs = bench.diffusers_config(DDPM_UNET)
    kwargs.pop("attn_norm_num_groups")  # the earlier benchmark's mismatch
    theirs = diffusers.UNet2DModel(**kwargs)
    with pytest.raises(ValueError, match="configurations differ"):
        assert_same_parameters(UNetModel(DDPM_UNET), theirs, "ddpm")


def test_zoo_sd_unet_and_vae_match_diffusers():
    unet = diffusers.UNet2DConditionModel(**config_dict(T2I_CONFIG.unet))
    assert_same_parameters(UNet2DConditionModel(T2I_CONFIG.unet), unet, "t2i unet")
    vae = diffusers.AutoencoderKL(**config_dict(VAE_CONFIG))
    assert_same_parameters(AutoencoderKL(VAE_CONFIG), vae, "vae")
