"""Reliability of the core boundary: errors, run folders, image modes, progress lines."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from diffrepro.core import cli
from diffrepro.core.checkpoints import load_checkpoint
from diffrepro.core.config import apply_overrides, check_ranges, config_from_dict
from diffrepro.core.data import load_image
from diffrepro.core.train import (
    TrainConfig,
    check_run_dir,
    latest_checkpoint,
    save_training_checkpoint,
    train,
)


@dataclasses.dataclass(frozen=True)
class Inner:
    groups: int = 4
    rate: float = 0.5


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    betas: tuple[float, float] = (0.9, 0.99)
    sizes: tuple[int, ...] = (1, 2)
    name: str = "x"

    def __post_init__(self) -> None:
        check_ranges(self.inner, positive=("groups",), fraction=("rate",))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"inner": {"groups": "four"}}, "groups must be an integer"),
        ({"inner": {"groups": True}}, "groups must be an integer"),
        ({"inner": {"rate": "nan"}}, "rate must be a number"),
        ({"inner": [1, 2]}, "inner must be a JSON object"),
        ({"betas": [0.9]}, "betas expects 2 values"),
        ({"sizes": 3}, "sizes must be a list"),
        ({"name": 3}, "name must be a string"),
        ({"inner": {"groups": 0}}, "groups must be > 0"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_saved_configs_are_type_and_range_checked(data, message) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_dict(Outer, data)


@pytest.mark.parametrize(
    "item, message",
    [
        ("betas=0.9", "betas expects 2 values"),
        ("inner.rate=nan", "finite"),
        ("inner.rate=inf", "finite"),
        ("inner.rate=2", "rate must be in"),
        ("inner.groups=0", "groups must be > 0"),
        ("inner.groups=1.5", "expects int"),
        ("sizes=[1, ", "cannot parse"),
    ],
)
def test_set_values_are_checked_and_name_the_item(item, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        apply_overrides(Outer(), [item])
    assert item.split("=")[0] in str(info.value)


def test_a_zero_is_honoured_not_replaced(tmp_path) -> None:
    assert apply_overrides(TrainConfig(), ["warmup_steps=0"]).warmup_steps == 0
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


def test_16_bit_and_float_images_keep_their_range(tmp_path) -> None:
    values = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    image = load_image(tmp_path / "g16.png")
    expected = torch.from_numpy(values.astype(np.float64) / 65535 * 2 - 1).float()
    assert image.shape == (3, 2, 2)
    torch.testing.assert_close(image[1], expected)
    Image.fromarray(np.array([[0.25, float("nan")]], np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="non-finite"):
        load_image(tmp_path / "f.tif")


def test_checkpoint_metadata_must_be_a_json_object(tmp_path) -> None:
    save_file({"w": torch.zeros(1)}, str(tmp_path / "l.safetensors"), {"config": "[1]"})
    with pytest.raises(ValueError, match="l.safetensors.*JSON object"):
        load_checkpoint(tmp_path / "l.safetensors")


def _save(out, step, keep=2):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    config = TrainConfig(steps=10, keep_checkpoints=keep, ema_decay=None)
    return save_training_checkpoint(out, step, model, None, opt, config)


def test_pruning_only_removes_older_steps_of_this_run(tmp_path) -> None:
    _save(tmp_path, 9)  # a later step (e.g. of another run) must survive
    for step in (1, 2, 3):
        _save(tmp_path, step)
    steps = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*"))
    assert steps == ["step_0000002", "step_0000003", "step_0000009"]
    assert latest_checkpoint(tmp_path).name == "step_0000003"


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_no_temp(tmp_path, monkeypatch):
    _save(tmp_path, 1)
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError, match="full"):
        _save(tmp_path, 2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step_0000001"]
    assert latest_checkpoint(tmp_path).name == "step_0000001"


def test_no_resume_refuses_a_folder_with_an_earlier_run(tmp_path) -> None:
    check_run_dir(tmp_path, resume=False)  # empty: fine
    _save(tmp_path, 1)
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    with pytest.raises(ValueError, match="earlier run"):
        train(torch.nn.Linear(2, 2), _loss, _batch, TrainConfig(steps=1), tmp_path, resume=False)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def _loss(model, batch):
    return model(batch).pow(2).mean()


def _batch(index):
    return torch.ones(2, 2) * (index + 1)


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DIFFREPRO_PROGRESS_SECONDS", "0")
    config = TrainConfig(steps=3, batch_size=2, ema_decay=None, log_every=1)
    train(torch.nn.Linear(2, 2), _loss, _batch, config, tmp_path, device="cpu")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train:")]
    assert [line.split(",")[0] for line in lines] == [
        "train: step 1/3 (33%)",
        "train: step 2/3 (66%)",
        "train: step 3/3 (100%)",
    ]
    assert all("loss" in line and "ETA" in line for line in lines)


def _parser(func):
    parser = argparse.ArgumentParser(prog="tool")
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("go")
    go.add_argument("--count", type=cli.positive_int, default=1)
    go.set_defaults(func=func)
    return parser


@pytest.mark.parametrize(
    "error, code, text",
    [
        (ValueError("bad --x value\nsecond line"), 2, "tool: error: bad --x value; second line"),
        (FileNotFoundError("no such file: a.png"), 2, "tool: error: no such file: a.png"),
        (KeyError("k"), 1, "internal error"),
        (ZeroDivisionError("division by zero"), 1, "DIFFREPRO_DEBUG=1"),
    ],
)
def test_run_reports_user_errors_and_bugs_in_one_line(error, code, text, capsys) -> None:
    def fail(args):
        raise error

    assert cli.run(_parser(fail), ["go"]) == code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and text in err


def test_argparse_errors_are_one_line(capsys) -> None:
    assert cli.run(_parser(print), ["go", "--count", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--count" in err and "positive" in err


def test_argument_types() -> None:
    assert cli.seed_int("0") == 0 and cli.device_name("CUDA:1") == "cuda:1"
    for fn, text in [
        (cli.seed_int, str(2**63)),
        (cli.seed_int, "-1"),
        (cli.positive_int, "0"),
        (cli.nonnegative_int, "-1"),
        (cli.finite_float, "nan"),
        (cli.device_name, "mps"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


def test_preset_given_tells_an_explicit_preset_from_the_default() -> None:
    parser = argparse.ArgumentParser()
    cli.add_common_args(parser, preset="demo")
    assert not cli.preset_given(parser.parse_args([]))
    assert cli.preset_given(parser.parse_args(["--preset", "demo"]))
    assert not cli.preset_given(argparse.Namespace())
    both = parser.parse_args(["--preset", "tiny", "--checkpoint", "w.safetensors"])
    with pytest.raises(ValueError, match="--preset and --checkpoint"):
        cli.reject_together(both, "--preset", "--checkpoint", "the checkpoint has its config")
    cli.reject_together(parser.parse_args(["--checkpoint", "w"]), "--preset", "--checkpoint", "")
