import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.core.checkpoints import load_checkpoint
from diffrepro.maskgit.cli import main
from diffrepro.maskgit.paper import BIBTEX


def write_image(path, size=16, seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    for c in "abc":
        for j in range(2):
            write_image(root / "data" / c / f"{j}.png", seed=ord(c) + j)
    assert (
        main(
            [
                "train-tokenizer",
                "--data",
                str(root / "data"),
                "--preset",
                "tiny",
                "--out",
                str(root / "tok"),
            ]
        )
        == 0
    )
    tok = root / "tok" / "tokenizer.safetensors"
    assert (
        main(
            [
                "train",
                "--data",
                str(root / "data"),
                "--tokenizer",
                str(tok),
                "--preset",
                "tiny",
                "--out",
                str(root / "tr"),
            ]
        )
        == 0
    )
    return root, tok, root / "tr" / "transformer.safetensors"


def test_cite_prints_the_bibtex(capsys):
    assert main(["cite"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == BIBTEX.strip() and "chang2022maskgit" in out


def test_train_writes_class_conditional_models(trained):
    root, tok, tr = trained
    _, meta = load_checkpoint(tr)
    assert meta["kind"] == "transformer" and meta["model"]["num_classes"] == 3
    assert load_checkpoint(tok)[1]["kind"] == "tokenizer"
    assert (root / "tr" / "checkpoints" / "latest").is_file()


def test_generation_verbs(trained, tmp_path):
    root, tok, tr = trained
    common = ["--tokenizer", str(tok), "--checkpoint", str(tr), "--preset", "tiny"]
    assert (
        main(
            [
                "sample",
                "--class",
                "2",
                "--steps",
                "3",
                "--num",
                "2",
                *common,
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "s" / "class_2.png").size[0] > 16
    image = write_image(tmp_path / "in.png", seed=9)
    assert (
        main(
            [
                "inpaint",
                "--input",
                str(image),
                "--box",
                "4,4,8,8",
                *common,
                "--out",
                str(tmp_path / "i"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "outpaint",
                "--input",
                str(image),
                "--side",
                "left",
                *common,
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "edit",
                "--input",
                str(image),
                "--box",
                "0,0,8,8",
                "--class",
                "1",
                *common,
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 0
    )
    for sub, name in (("i", "inpaint"), ("o", "outpaint"), ("e", "edit")):
        assert (tmp_path / sub / f"{name}.png").is_file()
        assert (tmp_path / sub / "comparison.png").is_file()
    a = np.asarray(Image.open(tmp_path / "s" / "class_2.png"))
    assert (
        main(
            [
                "sample",
                "--class",
                "2",
                "--steps",
                "3",
                "--num",
                "2",
                *common,
                "--out",
                str(tmp_path / "s2"),
            ]
        )
        == 0
    )
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "s2" / "class_2.png")))


def snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


BAD = [
    (["train-tokenizer", "--data", "{root}/nope"], "image folder not found"),
    (["train-tokenizer", "--data", "{root}/data", "--preset", "huge"], "unknown preset"),
    (
        ["train-tokenizer", "--data", "{root}/data", "--set", "train_tokenizer.steps=0"],
        "steps must be an integer >= 1, got 0",
    ),
    (["train-tokenizer", "--data", "{root}/data", "--set", "nope=1"], "has no field 'nope'"),
    (["train", "--data", "{root}/data", "--tokenizer", "{root}/missing.safetensors"], "not found"),
    (["train", "--data", "{root}/data", "--tokenizer", "{tr}"], "not a MaskGIT tokenizer"),
    (["sample", "--class", "0", "--tokenizer", "{tok}"], "--checkpoint"),
    (["sample", "--class", "7", "{gen}"], "class labels must lie in [0, 3)"),
    (["sample", "--class", "-1", "{gen}"], "class labels"),
    (["sample", "--class", "0", "--steps", "0", "{gen}"], "at least 1"),
    (["sample", "--class", "0", "--num", "0", "{gen}"], "--num must be at least 1"),
    (["sample", "--class", "0", "--schedule", "zigzag", "{gen}"], "unknown mask schedule"),
    (["sample", "--class", "0", "--temperature", "-1", "{gen}"], "choice_temperature"),
    (["sample", "--class", "0", "--guidance", "nan", "{gen}"], "guidance_scale"),
    (
        ["sample", "--class", "0", "--tokenizer", "{garbage}", "--checkpoint", "{tr}"],
        "not a Flax msgpack",
    ),
    (
        ["sample", "--class", "0", "--tokenizer", "{tok}", "--checkpoint", "{tok}"],
        "not a MaskGIT transformer",
    ),
    (["sample", "--class", "0", "{gen}", "--device", "tpu"], "unknown device"),
    (["inpaint", "--input", "{root}/none.png", "--box", "0,0,4,4", "{gen}"], "not found"),
    (["inpaint", "--input", "{big}", "--box", "0,0,4,4", "{gen}"], "the model takes 16×16"),
    (["inpaint", "--input", "{img}", "--box", "0,0,4", "{gen}"], "--box expects"),
    (["inpaint", "--input", "{img}", "--box", "8,8,12,12", "{gen}"], "does not fit"),
    (["outpaint", "--input", "{img}", "--side", "up", "{gen}"], "side must be"),
    (["outpaint", "--input", "{img}", "--keep", "0", "{gen}"], "outpainting must keep"),
    (["edit", "--input", "{img}", "--box", "0,0,4,4", "--class", "5", "{gen}"], "class labels"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(trained, capsys, argv, message):
    root, tok, tr = trained
    (root / "garbage").write_bytes(b"\xc1\x00not msgpack")
    img = write_image(root / "img.png", seed=3) if not (root / "img.png").exists() else None
    big = root / "big.png"
    if not big.exists():
        write_image(big, size=24)
    values = {
        "root": root,
        "tok": tok,
        "tr": tr,
        "garbage": root / "garbage",
        "img": img or root / "img.png",
        "big": big,
    }
    args = []
    for a in argv:
        if a == "{gen}":
            args += ["--tokenizer", str(tok), "--checkpoint", str(tr), "--preset", "tiny"]
        else:
            args.append(a.format(**values))
    before = snapshot(root)
    capsys.readouterr()
    assert main([*args, "--out", str(root / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("maskgit"), err
    assert ": error: " in err and "Traceback" not in err
    assert message in err
    assert snapshot(root) == before


def test_training_resumes_exactly(tmp_path, capsys):
    from dataclasses import replace

    from diffrepro.maskgit.config import TINY
    from diffrepro.maskgit.train import train_tokenizer

    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    cfg = TINY
    short = replace(cfg, train_tokenizer=replace(cfg.train_tokenizer, steps=2))
    train_tokenizer(short, images, tmp_path / "a")
    capsys.readouterr()
    resumed = train_tokenizer(cfg, images, tmp_path / "a")
    err = capsys.readouterr().err  # one-line progress when stderr is not a terminal
    assert "tokenizer: step 4/4 loss" in err and "step 2/4" not in err and "ETA" in err
    fresh = train_tokenizer(cfg, images, tmp_path / "b")
    for (k, v), w in zip(resumed.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(v, w), k
