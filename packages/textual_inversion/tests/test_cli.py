import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from diffrepro.textual_inversion.cli import main
from diffrepro.textual_inversion.formats import read_embeds
from diffrepro.textual_inversion.paper import BIBTEX


def write_images(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        array = np.full((40, 36, 4), 255, dtype=np.uint8)
        array[8 + i : 24 + i, 6:22, :3] = (200, 30 * i, 40)
        array[:4, :, 3] = 0  # a transparent band, composited on white
        Image.fromarray(array, "RGBA").save(folder / f"{i}.png")
    return folder


def snapshot(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_images(root / "data")
    out = root / "run"
    argv = ["train", "--data", str(data), "--token", "<obj>", "--init", "cat", "--preset", "tiny"]
    assert main([*argv, "--num-vectors", "2", "--out", str(out), "--seed", "1"]) == 0
    (root / "empty").mkdir()
    (root / "garbage.safetensors").write_bytes(b"nope")
    save_file({"<wide>": torch.randn(1, 16)}, str(root / "wide.safetensors"))
    return root, data, out


def test_train_writes_embeddings_config_and_logs(trained):
    root, data, out = trained
    token, rows = read_embeds(out / "learned_embeds.safetensors")
    assert token == "<obj>" and rows.shape == (2, 32)
    assert (out / "config.json").is_file() and (out / "run.json").is_file()
    assert list((out / "tb").iterdir()) and (out / "checkpoints" / "latest").is_file()


def test_sample_is_seeded_and_uses_the_embeddings(trained, capsys):
    root, data, out = trained
    embeds = str(out / "learned_embeds.safetensors")
    argv = ["sample", "--embeds", embeds, "--prompt", "a photo of <obj>", "--preset", "tiny"]
    assert main([*argv, "--out", str(root / "s1")]) == 0
    assert main([*argv, "--out", str(root / "s2")]) == 0
    first = np.asarray(Image.open(root / "s1" / "sample_000.png"))
    assert np.array_equal(first, np.asarray(Image.open(root / "s2" / "sample_000.png")))
    assert (root / "s1" / "samples.png").is_file()
    other = ["sample", "--embeds", embeds, "--prompt", "a photo of cat", "--preset", "tiny"]
    assert main([*other, "--out", str(root / "s3")]) == 0
    assert "does not use <obj>" in capsys.readouterr().err
    assert not np.array_equal(first, np.asarray(Image.open(root / "s3" / "sample_000.png")))


@pytest.mark.parametrize("fmt, name", [("official", "e.pt"), ("a1111", "w.pt"), ("bin", "e.bin")])
def test_convert_between_formats(trained, fmt, name):
    root, data, out = trained
    dest = root / f"conv-{fmt}" / name
    argv = ["convert", str(out / "learned_embeds.safetensors"), str(dest), "--format", fmt]
    assert main([*argv, "--token-id", "7"]) == 0
    assert torch.equal(read_embeds(dest)[1], read_embeds(out / "learned_embeds.safetensors")[1])


def test_resume_with_more_steps_continues(trained):
    root, data, out = trained
    argv = ["train", "--data", str(data), "--token", "<obj>", "--init", "cat", "--preset", "tiny"]
    assert main([*argv, "--num-vectors", "2", "--out", str(out), "--set", "steps=4"]) == 0
    assert (out / "checkpoints" / "step_0000004").is_dir()


def test_cite_prints_the_bibtex(capsys):
    assert main(["cite"]) == 0
    assert capsys.readouterr().out.strip() == BIBTEX.strip()
    assert "gal2022textual" in BIBTEX


def bad_cases(root, data, out):
    embeds = str(out / "learned_embeds.safetensors")
    tiny = ["--preset", "tiny"]
    train = ["train", "--data", str(data), "--token", "<new>", "--init", "cat", *tiny]
    sample = ["sample", "--prompt", "a <obj>", *tiny]
    return {
        "missing data": (
            ["train", "--data", str(root / "nope"), "--token", "<a>", *tiny],
            "not found",
        ),
        "empty data": (
            ["train", "--data", str(root / "empty"), "--token", "<a>", *tiny],
            "no images",
        ),
        "existing word": ([*train[:4], "cat", *train[5:]], "already in the vocabulary"),
        "upper case": ([*train[:4], "<New>", *train[5:]], "lower case"),
        "multi-token init": ([*train[:6], "horsey", *train[7:]], "single token"),
        "zero vectors": ([*train, "--num-vectors", "0"], "num_vectors must be at least 1"),
        "zero steps": ([*train, "--set", "steps=0"], "steps must be at least 1"),
        "negative lr": ([*train, "--set", "base_lr=-1"], "base_lr must be positive"),
        "bad flip": ([*train, "--set", "flip_p=2"], "flip_p"),
        "unknown field": ([*train, "--set", "nope=1"], "has no field"),
        "bad property": ([*train, "--set", "learnable_property=scene"], "learnable_property"),
        "bad format": ([*train, "--set", "save_format=ckpt"], "save_format"),
        "unknown preset": ([*train[:7], "--preset", "huge"], "known presets"),
        "odd resolution": ([*train, "--set", "resolution=30"], "multiple of"),
        "unknown zoo model": ([*train, "--model", "emoji-nope"], "unknown zoo entry"),
        "missing checkpoint": ([*train, "--checkpoint", str(root / "no-model")], "not found"),
        "single file without tokenizer": ([*train, "--checkpoint", embeds], "--tokenizer"),
        "other run in out": (
            [*train, "--out", str(out)],
            "holds a run with other settings",
        ),
        "too many vectors": ([*train, "--num-vectors", "80"], "more than the text encoder's 77"),
        "prompt too long": (
            ["sample", "--prompt", "a photo of <obj> " * 20, *tiny, "--embeds", embeds],
            "more than the text encoder's 77",
        ),
        "missing embeds": ([*sample, "--embeds", str(root / "x.safetensors")], "not found"),
        "garbage embeds": ([*sample, "--embeds", str(root / "garbage.safetensors")], "cannot read"),
        "wide embeds": ([*sample, "--embeds", str(root / "wide.safetensors")], "width 16"),
        "token twice": ([*sample, "--embeds", embeds, "--embeds", embeds], "already in the vocab"),
        "token for two": (
            [*sample, "--embeds", embeds, "--embeds", embeds, "--token", "<z>"],
            "exactly one --embeds",
        ),
        "convert onto a file": (
            ["convert", embeds, embeds, "--format", "bin"],
            "exists",
        ),
        "convert bad suffix": (
            ["convert", embeds, str(root / "x.pt"), "--format", "bin"],
            "must end in .bin",
        ),
        "convert official without id": (
            ["convert", embeds, str(root / "y.pt"), "--format", "official"],
            "token_id",
        ),
    }


CASES = list(bad_cases(Path("root"), Path("data"), Path("out")))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(trained, case, capsys):
    root, data, out = trained
    argv, message = bad_cases(root, data, out)[case]
    if case != "other run in out":
        argv = [*argv, "--out", str(root / "bad-out")] if argv[0] != "convert" else argv
    before = snapshot(root)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("textual-inversion: error:") and message in err, err
    assert snapshot(root) == before


def test_demo_without_a_built_zoo_fails_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path / "zoo"))
    monkeypatch.setenv("DIFFREPRO_ZOO_BUILD", "0")
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not built" in err, err
    assert not (tmp_path / "out").exists()
