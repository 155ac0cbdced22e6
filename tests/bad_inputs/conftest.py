"""Inputs for the bad-input suite, made once per session (tiny models, no training).

``assets`` is a read-only folder: cases that need a run folder to write into copy one into
their own ``{tmp}`` in ``setup``.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from diffrepro.core.checkpoints import save_checkpoint
from diffrepro.core.train import TrainConfig, save_training_checkpoint


def _png(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def _mask(path: Path, size: int) -> None:
    array = np.full((size, size), 255, np.uint8)
    array[size // 4 : size // 2, size // 4 : size // 2] = 0
    Image.fromarray(array).save(path)


def _run(folder: Path, model: torch.nn.Module, model_config) -> None:
    """A real core training checkpoint (step 1) of ``model`` under ``folder``."""
    optimizer = torch.optim.AdamW(model.parameters())
    config = TrainConfig(steps=1, ema_decay=None)
    save_training_checkpoint(folder, 1, model, None, optimizer, config, model_config, [1.0])


def _wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> None:
    samples = (np.sin(np.arange(int(seconds * rate)) * 0.05) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())


def _images(root: Path) -> None:
    _png(root / "img32.png", 32, 32)
    _png(root / "img16.png", 16, 16)
    _png(root / "img8.png", 8, 8)
    _png(root / "img31x32.png", 31, 32)
    _png(root / "img1.png", 1, 1)
    _png(root / "img6.png", 6, 6)
    (root / "notimage.png").write_text("this is not a PNG\n")
    _mask(root / "mask16.png", 16)
    _mask(root / "mask8.png", 8)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(root / "mask_black16.png")
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(root / "mask_white16.png")
    data = root / "data"
    data.mkdir()
    for i in range(2):
        _png(data / f"{i}.png", 32, 32, seed=i)
    (root / "empty").mkdir()
    (root / "data_small").mkdir()
    _png(root / "data_small" / "0.png", 8, 8)


def _arrays(root: Path) -> None:
    np.save(root / "kernel_nan.npy", np.full((3, 3), np.nan))
    np.save(root / "kernel_3d.npy", np.ones((3, 3, 3)))
    np.save(root / "kernel_neg.npy", -np.ones((3, 3)))
    np.save(root / "kernel_obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (root / "kernel.txt").write_text("1 2 3\n")
    torch.save({"embeddings": torch.zeros(2, 3)}, root / "torch_zip.npz")


def _weights(root: Path) -> None:
    tensors = {"w": torch.zeros(2)}
    save_file(tensors, str(root / "meta_list.safetensors"), metadata={"config": "[1, 2]"})
    save_file(tensors, str(root / "meta_broken.safetensors"), metadata={"config": "{not json"})
    (root / "corrupt.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    (root / "garbage.pt").write_bytes(b"not a pickle at all")
    (root / "weights.txt").write_text("weights\n")
    configs = {
        "clip_heads0": {"hidden_size": 32, "num_attention_heads": 0},
        "clip_four": {"hidden_size": "four"},
        "clip_list": [1],
        "clip_weight_map": {},
    }
    for name, config in configs.items():
        folder = root / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        if name == "clip_weight_map":
            index = {"weight_map": ["model.safetensors"]}
            (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        else:
            save_file(tensors, str(folder / "model.safetensors"))


def _adir(root: Path) -> None:
    from diffrepro.adir.config import PRESETS
    from diffrepro.adir.model import build_model

    cfg = PRESETS["tiny"]
    _run(root / "adir_run", build_model(cfg), cfg)
    folder = root / "adir_run" / "checkpoints" / "step_0000001"
    (root / "adir_model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())


def _sdm(root: Path) -> None:
    from diffrepro.sdm.config import PRESETS
    from diffrepro.sdm.network import SDMNetwork

    cfg = PRESETS["tiny"]
    save_checkpoint(root / "sdm_generator.safetensors", SDMNetwork(cfg.network), cfg)


def _vidm(root: Path) -> None:
    from diffrepro.vidm.config import preset
    from diffrepro.vidm.training import build_network

    cfg = preset("tiny")
    for stage in ("content", "motion"):
        _run(root / "vidm_run" / stage, build_network(cfg, stage), cfg)


def _diffmotion(root: Path) -> None:
    from diffrepro.diffmotion.bvh import Motion, format_bvh
    from diffrepro.diffmotion.config import PRESETS
    from diffrepro.diffmotion.model import DiffMotion
    from diffrepro.diffmotion.skeleton import upper_body_skeleton

    cfg = PRESETS["tiny"]
    _run(root / "dm_run", DiffMotion(cfg.model), cfg)
    _wav(root / "speech.wav")
    raw = (root / "speech.wav").read_bytes()
    (root / "truncated.wav").write_bytes(raw[:45])  # header + one odd byte
    (root / "notwav.wav").write_text("RIFF? no\n")
    skeleton = upper_body_skeleton()
    text = format_bvh(Motion(skeleton, 0.05, np.zeros((2, skeleton.num_channels))))
    (root / "good.bvh").write_text(text)
    frame_time = next(line for line in text.splitlines() if line.startswith("Frame Time:"))
    for name, value in (("inf", "inf"), ("nan", "nan"), ("tiny", "1e-300"), ("zero", "0")):
        (root / f"frametime_{name}.bvh").write_text(
            text.replace(frame_time, f"Frame Time: {value}")
        )
    (root / "frames_negative.bvh").write_text(text.replace("Frames: 2", "Frames: -5"))
    lines = text.splitlines()
    lines[-1] = " ".join(["nan"] * skeleton.num_channels)
    (root / "values_nan.bvh").write_text("\n".join(lines) + "\n")
    (root / "binary.bvh").write_bytes(b"\xff\xfe\x00\x81binary" * 20)


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_input_assets")
    for make in (_images, _arrays, _weights, _adir, _sdm, _vidm, _diffmotion):
        make(root)
    return root
