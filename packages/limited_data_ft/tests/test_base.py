"""Opening bases from local files (ADM folder / file + flags, diffusers folders) and sampling."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from diffrepro.core.checkpoints import save_checkpoint
from diffrepro.core.zoo.ddpm import DiffusionFlags, save_adm
from diffrepro.limited_data_ft.base import TINY_UNET2D, open_base, tiny_base
from diffrepro.limited_data_ft.sampling import sample_images


def same_output(a, b, *extra):
    """Equal outputs (to float32 rounding: weights read back from disk may pick another kernel)."""
    x, t = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([5])
    with torch.no_grad():
        return torch.allclose(a(x, t, *extra), b(x, t, *extra), rtol=1e-5, atol=1e-6)


def test_adm_folder_in_the_zoo_layout(tmp_path):
    tiny = tiny_base("tiny-adm")
    save_adm(tiny.unet, DiffusionFlags(diffusion_steps=500, noise_schedule="cosine"), tmp_path)
    base = open_base(str(tmp_path))
    assert same_output(base.unet, tiny.unet)
    assert len(base.schedule) == 500 and base.image_size == 16
    assert base.ref["sha256"] == tiny.ref["sha256"]


def test_adm_weights_file_with_flags(tmp_path):
    tiny = tiny_base("tiny-adm-cond")
    save_checkpoint(tmp_path / "w.safetensors", tiny.unet)
    flags = tmp_path / "flags.json"
    flags.write_text(json.dumps(dataclasses.asdict(tiny.unet.config)))
    base = open_base(str(tmp_path / "w.safetensors"), model_flags=str(flags))
    assert base.num_classes == 3 and same_output(base.unet, tiny.unet, torch.tensor([2]))
    assert base.ref["model_flags"] == str(flags.resolve())
    with pytest.raises(ValueError, match="model-flags"):
        open_base(str(tmp_path / "w.safetensors"))


def write_diffusers(folder, unet, scheduler=None):
    (folder / "unet").mkdir(parents=True)
    state = {k: v.contiguous() for k, v in unet.state_dict().items()}
    save_file(state, str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    config = {"_class_name": "UNet2DModel", **dataclasses.asdict(TINY_UNET2D)}
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    if scheduler is not None:
        (folder / "scheduler").mkdir()
        (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))


def test_diffusers_pipeline_and_unet_folders(tmp_path):
    tiny = tiny_base("tiny-unet2d")
    sched = {"num_train_timesteps": 200, "beta_schedule": "linear", "prediction_type": "epsilon"}
    write_diffusers(tmp_path / "pipe", tiny.unet, sched)
    pipe = open_base(str(tmp_path / "pipe"))
    assert len(pipe.schedule) == 200 and same_output(pipe.unet, tiny.unet)
    unet_only = open_base(str(tmp_path / "pipe" / "unet"))
    assert len(unet_only.schedule) == 200  # the pipeline's scheduler beside it
    write_diffusers(tmp_path / "v", tiny.unet, {**sched, "prediction_type": "v_prediction"})
    with pytest.raises(ValueError, match="not supported"):
        open_base(str(tmp_path / "v"))


def test_unknown_folder_and_missing_path(tmp_path):
    with pytest.raises(ValueError, match="neither"):
        open_base(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not found"):
        open_base(str(tmp_path / "nope"))


def test_samples_depend_only_on_seed_and_index():
    base = tiny_base("tiny-adm")
    kw = {"image_size": 16, "num_steps": 2, "seed": 4}
    three = sample_images(base.unet, base.schedule, 3, batch_size=2, **kw)
    two = sample_images(base.unet, base.schedule, 2, **kw)
    assert torch.equal(three[:2], two) and three.shape == (3, 3, 16, 16)
    assert not torch.equal(
        three[0], sample_images(base.unet, base.schedule, 1, **{**kw, "seed": 5})[0]
    )
    assert three.abs().max() <= 1
