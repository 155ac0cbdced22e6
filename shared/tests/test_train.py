import dataclasses
import math
import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from diffrepro.core.checkpoints import load_checkpoint
from diffrepro.core.data import random_crop
from diffrepro.core.models.unet import UNetModel, unet_preset
from diffrepro.core.train import TrainConfig, latest_checkpoint, learning_rate, train, unwrap

torch.set_num_threads(1)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.Dropout(0.2), nn.Conv2d(8, 3, 3, padding=1)
    )


def _dataset() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(3, 6, 6, generator=gen) for _ in range(10)]


def _denoise_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    noisy = batch + torch.randn_like(batch)  # uses the loop's seeded RNG
    return (model(noisy) - batch).square().mean()


CONFIG = TrainConfig(
    steps=5,
    batch_size=4,
    lr=1e-2,
    grad_accum=2,
    grad_clip=0.5,
    ema_decay=0.9,
    checkpoint_every=2,
    log_every=1,
)


def _states(out_dir: Path) -> tuple[dict, dict, dict]:
    folder = latest_checkpoint(out_dir)
    train_state = torch.load(folder / "train_state.pt", weights_only=True)
    return (
        load_checkpoint(folder / "model.safetensors")[0],
        load_checkpoint(folder / "ema.safetensors")[0],
        train_state["optimizer"]["state"],
    )


def _assert_same(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_same(a[key], b[key], exact)
        elif exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_killed_and_resumed_run_ends_bit_identical(tmp_path: Path) -> None:
    full = train(_net(), _denoise_loss, _dataset(), CONFIG, tmp_path / "full")
    assert full.step == 5 and len(full.losses) == 5

    calls = {"n": 0}

    def dies_in_step_4(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 8:  # second micro-batch of step 4, after the step-2 checkpoint
            raise KeyboardInterrupt
        return _denoise_loss(model, batch)

    with pytest.raises(KeyboardInterrupt):
        train(_net(), dies_in_step_4, _dataset(), CONFIG, tmp_path / "killed")
    assert latest_checkpoint(tmp_path / "killed").name == "step_0000002"
    resumed = train(_net(), _denoise_loss, _dataset(), CONFIG, tmp_path / "killed")
    assert resumed.step == 5 and len(resumed.losses) == 5
    assert resumed.losses == full.losses  # the history before the kill comes back on resume
    for a, b in zip(_states(tmp_path / "full"), _states(tmp_path / "killed")):
        _assert_same(a, b)
    kept = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").glob("step_*"))
    assert kept == ["step_0000004", "step_0000005"]


def test_logging_samples_and_config_metadata(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(
        steps=2, batch_size=2, image_every=2, checkpoint_every=2, log_every=1, warmup_steps=4
    )
    result = train(
        _net(),
        _denoise_loss,
        _dataset(),
        config,
        tmp_path,
        model_config={"width": 8},
        sample_fn=lambda m: m(torch.zeros(2, 3, 6, 6)),
    )
    assert (tmp_path / "samples" / "step_0000002.png").is_file()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert {"train/loss", "train/lr", "train/grad_norm"} <= set(events.Tags()["scalars"])
    assert [e.value for e in events.Scalars("train/lr")] == pytest.approx(
        [2.5e-5, 5e-5]
    )  # linear warm-up
    assert events.Tags()["images"] == ["samples"]
    meta = load_checkpoint(result.checkpoint / "model.safetensors")[1]
    assert meta["model"] == {"width": 8} and meta["train"]["batch_size"] == 2 and meta["step"] == 2


def test_batch_function_data_and_bad_loss(tmp_path: Path) -> None:
    seen = []

    def batch_at(index: int) -> torch.Tensor:
        seen.append(index)
        return torch.full((2, 3, 4, 4), float(index))

    config = TrainConfig(steps=2, grad_accum=3, ema_decay=None, checkpoint_every=5)
    train(_net(), _denoise_loss, batch_at, config, tmp_path / "fn")
    assert seen == list(range(6))
    with pytest.raises(FloatingPointError, match="step 1"):
        train(_net(), lambda m, b: torch.tensor(float("nan")), batch_at, config, tmp_path / "nan")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    config = TrainConfig(**{**CONFIG.__dict__, "grad_accum": 1})

    def loss_fn(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        assert isinstance(unwrap(model), nn.Sequential) and model is not unwrap(model)
        return _denoise_loss(model, batch)

    net = _net()
    train(net, loss_fn, _dataset(), config, Path(out_dir), device="cpu")
    torch.save(net.state_dict(), Path(out_dir) / f"rank{rank}.pt")


def test_ddp_two_processes_match_gradient_accumulation(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(port, str(tmp_path / "ddp")), nprocs=2, start_method="fork"
    )
    rank0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    _assert_same(rank0, rank1)
    train(
        _net(), _denoise_loss, _dataset(), CONFIG, tmp_path / "single"
    )  # grad_accum=2, one process
    for a, b in zip(_states(tmp_path / "ddp"), _states(tmp_path / "single")):
        _assert_same(a, b, exact=False)


class _PhotoCrops(torch.utils.data.Dataset):
    def __init__(self, photos: torch.Tensor) -> None:
        self.photos = photos

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> torch.Tensor:
        return random_crop(self.photos[index], 16)


def test_tiny_unet_learns_on_photo_crops(tmp_path: Path) -> None:
    pytest.importorskip("skimage")
    from diffrepro.core.data import sample_photos

    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).float()

    def eps_loss(model: nn.Module, x0: torch.Tensor, t=None, noise=None) -> torch.Tensor:
        t = torch.randint(0, 1000, (x0.shape[0],)) if t is None else t
        noise = torch.randn_like(x0) if noise is None else noise
        a = alpha_bar[t].view(-1, 1, 1, 1)
        return (model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t) - noise).square().mean()

    torch.manual_seed(0)
    cfg = unet_preset(
        "tiny", model_channels=8, num_groups=2, attention_resolutions=(), resblock_updown=False
    )
    model = UNetModel(cfg)
    photos = sample_photos(48)
    gen = torch.Generator().manual_seed(5)
    eval_x = torch.stack([random_crop(p, 16, gen) for p in photos])
    eval_t = torch.randint(0, 1000, (6,), generator=gen)
    eval_noise = torch.randn(eval_x.shape, generator=gen)

    def eval_loss() -> float:
        with torch.no_grad():
            return float(eps_loss(model, eval_x, eval_t, eval_noise))

    before = eval_loss()
    config = TrainConfig(
        steps=100, batch_size=8, lr=2e-3, ema_decay=None, checkpoint_every=1000, log_every=50
    )
    result = train(model, eps_loss, _PhotoCrops(photos), config, tmp_path)
    assert eval_loss() < 0.5 * before
    assert sum(result.losses[-20:]) < sum(result.losses[:20])


def test_learning_rate_warmup_then_cosine_decay_to_zero() -> None:
    config = TrainConfig(steps=10, lr=2.0, warmup_steps=4, lr_decay="cosine")
    got = [learning_rate(config, s) for s in range(10)]
    want = [2.0 * min(1, (s + 1) / 4) * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)]
    assert got == pytest.approx(want, abs=1e-12)
    assert got[0] == pytest.approx(0.5 * 0.5 * (1 + math.cos(0.0)))
    constant = TrainConfig(steps=10, lr=2.0, warmup_steps=4)
    assert [learning_rate(constant, s) for s in (0, 3, 9)] == [0.5, 2.0, 2.0]
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay="linear")


def _mirror_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """No random draws: randn_like and dropout fill channels-last tensors in another order."""
    return (model(batch) - batch.flip(-1)).square().mean()


def test_channels_last_training_matches_the_default_layout(tmp_path: Path) -> None:
    runs = {}
    for channels_last in (False, True):
        model = _net()
        model[2] = nn.Identity()
        config = dataclasses.replace(CONFIG, channels_last=channels_last, lr_decay="cosine")
        train(model, _mirror_loss, _dataset(), config, tmp_path / str(channels_last))
        runs[channels_last] = model
        weight = model[0].weight
        assert weight.is_contiguous()  # back in the default layout, ready to save
    for a, b in zip(runs[False].parameters(), runs[True].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
