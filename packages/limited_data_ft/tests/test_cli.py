"""The command end to end on a tiny base, and its bad-input contract (exit 2, one line, disk
unchanged)."""

import json

import numpy as np
import pytest
from PIL import Image

from diffrepro.core.testing import BadInput, check_bad_input
from diffrepro.limited_data_ft.cli import main
from diffrepro.limited_data_ft.paper import BIBTEX


def write_images(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        array = np.full((20, 18, 3), 255, dtype=np.uint8)
        array[3 + i : 12 + i, 4:13] = (200, 40 * i, 30)
        Image.fromarray(array).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_images(root / "data")
    out = root / "run"
    argv = ["train", "--base", "tiny-adm", "--data", str(data), "--variant", "a3ft"]
    assert main([*argv, "--preset", "tiny", "--out", str(out), "--seed", "1"]) == 0
    return root, data, out


def test_train_writes_only_trainable_tensors_and_the_budget(trained, capsys):
    root, data, out = trained
    assert (out / "finetuned.safetensors").is_file() and (out / "config.json").is_file()
    report = json.loads((out / "parameters.json").read_text())
    assert report["variant"] == "a3ft" and report["adapter_blocks"] == 4
    assert 0 < report["adapter_fraction"] < 0.05
    assert list((out / "tb").iterdir())


def test_sample_is_seeded(trained):
    root, data, out = trained
    argv = ["sample", "--checkpoint", str(out / "finetuned.safetensors"), "--num", "2"]
    assert main([*argv, "--out", str(root / "s1")]) == 0
    assert main([*argv, "--out", str(root / "s2")]) == 0
    first = np.asarray(Image.open(root / "s1" / "sample_000.png"))
    assert np.array_equal(first, np.asarray(Image.open(root / "s2" / "sample_000.png")))
    assert first.shape == (16, 16, 3)
    assert main(["sample", "--base", "tiny-unet2d", "--num", "1", "--steps", "2",
                 "--out", str(root / "s3")]) == 0  # fmt: skip


def test_cite(capsys):
    assert main(["cite"]) == 0
    assert capsys.readouterr().out.strip() == BIBTEX.strip()


def _data(tmp):
    write_images(tmp / "data")


def _empty(tmp):
    (tmp / "empty").mkdir()


def _garbage(tmp):
    (tmp / "bad.safetensors").write_bytes(b"not a safetensors file")


def _flags(tmp):
    _data(tmp)
    (tmp / "w.pt").write_bytes(b"x")


def _other_run(tmp):
    _data(tmp)
    run = tmp / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"base": {}, "data": "elsewhere"}))


TRAIN = ["train", "--data", "{tmp}/data", "--preset", "tiny", "--out", "{tmp}/out"]
CASES = [
    BadInput("unknown preset", [*TRAIN[:3], "--base", "tiny-adm", "--preset", "huge"], "preset",
             setup=_data),
    BadInput("unknown variant", [*TRAIN, "--base", "tiny-adm", "--variant", "lora"], "variant",
             setup=_data),
    BadInput("bad --set key", [*TRAIN, "--base", "tiny-adm", "--set", "nope=1"], "nope",
             setup=_data),
    BadInput("zero lr", [*TRAIN, "--base", "tiny-adm", "--set", "lr=0"], "lr", setup=_data),
    BadInput("zero rank", [*TRAIN, "--base", "tiny-adm", "--set", "adapter.rank=0"], "rank",
             setup=_data),
    BadInput("budget 0", [*TRAIN, "--base", "tiny-adm", "--set", "adapter.budget=0"], "budget",
             setup=_data),
    BadInput("bad placement", [*TRAIN, "--base", "tiny-adm", "--set", "adapter.placement=x"],
             "placement", setup=_data),
    BadInput("unknown attn part", [*TRAIN, "--base", "tiny-adm", "--variant", "attn", "--set",
                                   "attn_parts=to_q"], "attn_parts", setup=_data),
    BadInput("missing data", [*TRAIN, "--base", "tiny-adm"], "data"),
    BadInput("empty data", ["train", "--base", "tiny-adm", "--data", "{tmp}/empty", "--out",
                            "{tmp}/out"], "no images", setup=_empty),
    BadInput("no base", TRAIN, "--base", setup=_data),
    BadInput("missing base", [*TRAIN, "--base", "{tmp}/nope"], "nope", setup=_data),
    BadInput("base and checkpoint", [*TRAIN, "--base", "tiny-adm", "--checkpoint", "{tmp}/w.pt"],
             "together", setup=_flags),
    BadInput("weights without flags", [*TRAIN, "--checkpoint", "{tmp}/w.pt"], "model-flags",
             setup=_flags),
    BadInput("missing flags file", [*TRAIN, "--checkpoint", "{tmp}/w.pt", "--model-flags",
                                    "{tmp}/f.json"], "f.json", setup=_flags),
    BadInput("label on unconditional", [*TRAIN, "--base", "tiny-adm", "--label", "1"],
             "unconditional", setup=_data),
    BadInput("conditional without label", [*TRAIN, "--base", "tiny-adm-cond"], "--label",
             setup=_data),
    BadInput("label out of range", [*TRAIN, "--base", "tiny-adm-cond", "--label", "3"],
             "not a class", setup=_data),
    BadInput("negative label", [*TRAIN, "--base", "tiny-adm-cond", "--label", "-1"], "label",
             setup=_data),
    BadInput("other run in --out", [*TRAIN[:-1], "{tmp}/run", "--base", "tiny-adm"],
             "other settings", setup=_other_run),
    BadInput("sample without model", ["sample", "--out", "{tmp}/s"], "--checkpoint"),
    BadInput("sample missing checkpoint", ["sample", "--checkpoint", "{tmp}/x.safetensors"],
             "x.safetensors"),
    BadInput("sample garbage checkpoint", ["sample", "--checkpoint", "{tmp}/bad.safetensors",
                                           "--out", "{tmp}/s"], "bad.safetensors",
             setup=_garbage),
    BadInput("sample zero images", ["sample", "--base", "tiny-adm", "--num", "0"], "--num"),
    BadInput("sample zero steps", ["sample", "--base", "tiny-adm", "--steps", "0"], "--steps"),
    BadInput("sample too many steps", ["sample", "--base", "tiny-adm", "--steps", "5000",
                                       "--out", "{tmp}/s"], "5000"),
    BadInput("sample bad seed", ["sample", "--base", "tiny-adm", "--seed", "-3"], "seed"),
    BadInput("demo on a missing GPU", ["demo", "--quick", "--device", "cuda:7"], "cuda"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case, tmp_path, capsys, monkeypatch):
    check_bad_input(main, case, tmp_path, capsys, monkeypatch)
