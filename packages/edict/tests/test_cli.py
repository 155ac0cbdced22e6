"""The ``edict`` command: end to end on the tiny random stack, and every bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.core.checkpoints import save_checkpoint
from diffrepro.edict.cli import main
from diffrepro.edict.paper import BIBTEX

TINY = ["--checkpoint", "tiny-random", "--preset", "tiny"]


def write_image(path, size=(40, 48), seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cite_prints_the_bibtex(capsys):
    assert main(["cite"]) == 0
    assert capsys.readouterr().out.strip() == BIBTEX.strip()


def test_reconstruct_is_exact_and_invert_then_edit_equals_edit(tmp_path, capsys):
    image = write_image(tmp_path / "in.png")
    rec = tmp_path / "rec"
    assert main(["reconstruct", "--image", str(image), "--prompt", "a cat", *TINY,
                 "--out", str(rec)]) == 0  # fmt: skip
    metrics = json.loads((rec / "metrics.json").read_text())
    assert metrics["latent_relative_error"] < 1e-10
    assert metrics["pixel_mse_to_input"] == pytest.approx(metrics["vae_floor_mse"], rel=1e-9)
    assert (rec / "reconstruction.png").is_file() and (rec / "input.png").is_file()
    assert json.loads((rec / "config.json").read_text())["steps"] == 10

    inv = tmp_path / "inv"
    invert = ["invert", "--image", str(image), "--prompt", "a cat", *TINY, "--out", str(inv)]
    assert main(invert) == 0
    direct, from_file = tmp_path / "direct", tmp_path / "from_file"
    argv = ["edit", "--target", "a dog", "--checkpoint", "tiny-random"]
    assert main([*argv, "--image", str(image), "--prompt", "a cat", "--preset", "tiny",
                 "--out", str(direct)]) == 0  # fmt: skip
    assert main([*argv, "--inversion", str(inv / "inversion.safetensors"), "--out",
                 str(from_file)]) == 0  # fmt: skip
    a = np.asarray(Image.open(direct / "edited.png"))
    b = np.asarray(Image.open(from_file / "edited.png"))
    assert a.shape == (32, 32, 3) and np.array_equal(a, b)
    edit_metrics = json.loads((direct / "metrics.json").read_text())
    assert edit_metrics["latent_relative_error"] > 1e-3  # the edit changed the latent
    capsys.readouterr()


def test_ddim_method_flag_is_not_exact(tmp_path):
    image = write_image(tmp_path / "in.png")
    out = tmp_path / "ddim"
    assert main(["reconstruct", "--image", str(image), "--prompt", "a cat", *TINY,
                 "--method", "ddim", "--out", str(out)]) == 0  # fmt: skip
    assert json.loads((out / "metrics.json").read_text())["latent_relative_error"] > 1e-4


def _bad_cases(tmp):
    image = write_image(tmp / "in.png")
    (tmp / "text.png").write_text("not an image")
    (tmp / "model.safetensors").write_bytes(b"x")
    save_checkpoint(tmp / "other.safetensors", {"w": torch.zeros(1)}, {"kind": "weights"})
    base = ["--image", str(image), "--prompt", "a cat"]
    edit = ["edit", "--target", "a dog"]
    return {
        "missing image": ([*edit, "--image", str(tmp / "no.png"), "--prompt", "a", *TINY],
                          "image not found"),
        "unreadable image": ([*edit, "--image", str(tmp / "text.png"), "--prompt", "a", *TINY],
                             "cannot read image"),
        "unknown preset": ([*edit, *base, "--checkpoint", "tiny-random", "--preset", "huge"],
                           "unknown preset"),
        "unknown field": ([*edit, *base, *TINY, "--set", "nope=1"], "has no field 'nope'"),
        "zero strength": ([*edit, *base, *TINY, "--set", "strength=0"], "strength in (0, 1]"),
        "big strength": ([*edit, *base, *TINY, "--strength", "1.5"], "strength in (0, 1]"),
        "zero p": ([*edit, *base, *TINY, "--p", "0"], "p in (0, 1]"),
        "zero steps": ([*edit, *base, *TINY, "--steps", "0"], "steps >= 1"),
        "no active step": ([*edit, *base, *TINY, "--strength", "0.05"], "int(steps * strength)"),
        "no model": ([*edit, *base, "--preset", "tiny"], "no model given"),
        "missing model": ([*edit, *base, "--checkpoint", str(tmp / "none")], "model not found"),
        "single file, no tokenizer": (
            [*edit, *base, "--checkpoint", str(tmp / "model.safetensors")], "carries no tokenizer"
        ),
        "no prompt": (["invert", "--image", str(image), *TINY], "--image and a non-empty"),
        "empty prompt": (["invert", "--image", str(image), "--prompt", "", *TINY],
                         "--image and a non-empty"),
        "missing inversion": ([*edit, "--inversion", str(tmp / "none.safetensors")],
                              "inversion file not found"),
        "foreign inversion": ([*edit, "--inversion", str(tmp / "other.safetensors")],
                              "is not an `edict invert` file"),
        "inversion and image": ([*edit, "--inversion", str(tmp / "other.safetensors"), *base],
                                "not both"),
        "no cuda": ([*edit, *base, *TINY, "--device", "cuda:7"], "cuda"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["missing image", "unreadable image", "unknown preset", "unknown field", "zero strength",
     "big strength", "zero p", "zero steps", "no active step", "no model", "missing model",
     "single file, no tokenizer", "no prompt", "empty prompt", "missing inversion",
     "foreign inversion", "inversion and image", "no cuda"],
)  # fmt: skip
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(tmp_path, capsys, name):
    argv, message = _bad_cases(tmp_path)[name]
    out = tmp_path / "out"
    out.mkdir()
    (out / "edited.png").write_bytes(b"keep me")
    before = snapshot(tmp_path)
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("edict: error:"), err
    assert message in err
    assert snapshot(tmp_path) == before


def test_inversion_file_refuses_a_different_grid(tmp_path, capsys):
    image = write_image(tmp_path / "in.png")
    inv = tmp_path / "inv"
    invert = ["invert", "--image", str(image), "--prompt", "a cat", *TINY, "--out", str(inv)]
    assert main(invert) == 0
    before = snapshot(tmp_path)
    argv = ["reconstruct", "--inversion", str(inv / "inversion.safetensors")]
    assert main([*argv, "--set", "p=0.9", "--out", str(tmp_path / "r")]) == 2
    assert "p must match the inversion file" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_explicit_zero_guidance_is_honoured(tmp_path):
    image = write_image(tmp_path / "in.png")
    out = tmp_path / "inv"
    argv = ["invert", "--image", str(image), "--prompt", "a cat", *TINY, "--out", str(out)]
    assert main([*argv, "--guidance", "0", "--strength", "0.3"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["guidance"] == 0.0 and cfg["strength"] == 0.3


@pytest.mark.slow
def test_zoo_model_by_name(tmp_path, monkeypatch, shared_cache):
    """``--checkpoint emoji-t2i`` goes through the core zoo (here its tiny 16 px variants)."""
    from diffrepro.core import zoo
    from diffrepro.core.zoo.tiny import tiny_entries

    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path / "zoo"))
    tiny = [e for e in tiny_entries(prefix="") if e.name in ("emoji-vae", "emoji-t2i")]
    for entry in tiny:
        zoo.register(entry, replace=True)
    try:
        image = write_image(tmp_path / "in.png")
        out = tmp_path / "rec"
        argv = ["reconstruct", "--image", str(image), "--prompt", "cat face", "--preset", "tiny"]
        assert main([*argv, "--checkpoint", "emoji-t2i", "--out", str(out)]) == 2  # not built
        assert not out.exists()
        zoo.path("emoji-t2i")  # build the tiny entries (the command never builds)
        assert main([*argv, "--checkpoint", "emoji-t2i", "--out", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["latent_relative_error"] < 1e-10
        assert Image.open(out / "reconstruction.png").size == (16, 16)
    finally:
        for entry in tiny:
            zoo.unregister(entry.name)


def test_diffusers_folder_with_fp16_weights_runs_exactly_in_float64(tmp_path):
    from diffrepro.core.models.sd_export import save_stable_diffusion
    from diffrepro.core.models.sd_tiny import TINY_WORDS, tiny_stable_diffusion
    from diffrepro.core.tokenizer import minimal_vocab

    vocab, merges = minimal_vocab(list(TINY_WORDS))
    folder = save_stable_diffusion(
        tiny_stable_diffusion(dtype=torch.float16), tmp_path / "sd", vocab=vocab, merges=merges
    )
    image = write_image(tmp_path / "in.png")
    out = tmp_path / "rec"
    argv = ["reconstruct", "--image", str(image), "--prompt", "a cat", "--preset", "tiny"]
    assert main([*argv, "--checkpoint", str(folder), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["latent_relative_error"] < 1e-10
