import dataclasses
import os
from pathlib import Path

import pytest
import torch

from diffrepro.core.checkpoints import (
    atomic_write,
    load_checkpoint,
    load_state_dict,
    read_state_dict,
    save_checkpoint,
)


@dataclasses.dataclass(frozen=True)
class _Config:
    channels: int = 8
    mult: tuple[int, ...] = (1, 2)
    name: str = "tiny"


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.GroupNorm(2, 4), torch.nn.Linear(4, 2)
    )


def test_save_load_roundtrip_with_config(tmp_path: Path) -> None:
    net = _net()
    path = save_checkpoint(tmp_path / "sub" / "model.safetensors", net, _Config())
    state, config = load_checkpoint(path)
    assert config == {"channels": 8, "mult": [1, 2], "name": "tiny"}
    for key, value in net.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    fresh = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.GroupNorm(2, 4), torch.nn.Linear(4, 2)
    )
    load_state_dict(fresh, state, source=str(path))
    torch.testing.assert_close(fresh[0].weight, net[0].weight, rtol=0, atol=0)
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp files left


def test_save_accepts_dict_config_and_none(tmp_path: Path) -> None:
    sd = {"a": torch.arange(3.0)}
    assert load_checkpoint(save_checkpoint(tmp_path / "a.safetensors", sd, {"lr": 1e-4}))[1] == {
        "lr": 1e-4
    }
    assert load_checkpoint(save_checkpoint(tmp_path / "b.safetensors", sd, None))[1] == {}
    with pytest.raises(ValueError, match="config must be"):
        save_checkpoint(tmp_path / "c.safetensors", sd, 3)


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", {"a": torch.ones(2)}, {"v": 1})

    def crash_midway(tmp: Path) -> None:
        tmp.write_bytes(b"half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash_midway)
    with pytest.raises(TypeError):
        save_checkpoint(path, {"a": torch.zeros(2)}, {"not json": object()})
    state, config = load_checkpoint(path)
    assert config == {"v": 1} and torch.equal(state["a"], torch.ones(2))
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_read_pickle_unwraps_state_dict_and_filters_non_tensors(tmp_path: Path) -> None:
    net = _net()
    torch.save({"state_dict": net.state_dict(), "global_step": 7}, tmp_path / "model.ckpt")
    torch.save(net.state_dict(), tmp_path / "model.pt")
    for name in ("model.ckpt", "model.pt"):
        state = read_state_dict(tmp_path / name)
        assert set(state) == set(net.state_dict())
    torch.save({"ema_state_dict": {"w": torch.ones(1)}, "iters": 3}, tmp_path / "vidm.pth")
    assert set(read_state_dict(tmp_path / "vidm.pth", key="ema_state_dict")) == {"w"}
    with pytest.raises(ValueError, match="no entry 'ema'.*ema_state_dict, iters"):
        read_state_dict(tmp_path / "vidm.pth", key="ema")


def test_read_pickle_refuses_arbitrary_objects(tmp_path: Path) -> None:
    torch.save({"weights": torch.ones(1), "obj": _Config()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="weights-only"):
        read_state_dict(tmp_path / "evil.pt")


def test_read_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="unsupported checkpoint format"):
        read_state_dict(tmp_path / "x.txt")
    (tmp_path / "broken.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read safetensors"):
        read_state_dict(tmp_path / "broken.safetensors")
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read"):
        read_state_dict(tmp_path / "broken.pt")


def test_load_state_dict_lists_all_problems_together() -> None:
    net = _net()
    state = dict(net.state_dict())
    del state["0.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["2.weight"] = torch.zeros(5, 5)
    with pytest.raises(ValueError) as info:
        load_state_dict(net, state, source="ckpt.pt")
    message = str(info.value)
    assert "ckpt.pt" in message and "\n" not in message
    assert "missing keys: 0.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "2.weight: checkpoint (5, 5) vs model (2, 4)" in message


def test_load_state_dict_casts_fp16_into_fp32() -> None:
    net = _net()
    half = {k: v.half() for k, v in net.state_dict().items()}
    fresh = _net().apply(lambda m: [p.data.zero_() for p in m.parameters(recurse=False)])
    load_state_dict(fresh, half)
    assert fresh[0].weight.dtype == torch.float32
    torch.testing.assert_close(fresh[0].weight, net[0].weight.half().float(), rtol=0, atol=0)
