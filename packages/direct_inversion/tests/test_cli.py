"""The command: edit and sweep on real loader paths, cite, the registry, and bad input."""

import hashlib
import json

import pytest
import torch
from PIL import Image

from diffrepro.core import papers
from diffrepro.core.models.sd_tiny import tiny_stable_diffusion
from diffrepro.direct_inversion.cli import main
from diffrepro.direct_inversion.paper import BIBTEX
from diffrepro.direct_inversion.weights import load_model

from .folders import save_sd_folder

FAST = ["--preset", "tiny", "--seed", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_sd_folder(tiny_stable_diffusion(seed=0), tmp_path_factory.mktemp("sd") / "model")


@pytest.fixture
def image(tmp_path):
    pixels = torch.randint(0, 256, (40, 48, 3), generator=torch.Generator().manual_seed(0))
    path = tmp_path / "in.png"
    Image.fromarray(pixels.to(torch.uint8).numpy()).save(path)
    return path


def snapshot(root):
    return {
        p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_edit_with_a_diffusers_folder_reconstructs_at_lambda_one(model_dir, image, tmp_path):
    out = tmp_path / "out"
    args = ["edit", "--checkpoint", str(model_dir), "--image", str(image), "--prompt", "a cat"]
    assert main([*args, *FAST, "--lam", "1", "--dtype", "float64", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["latent_rel"] < 1e-10
    config = json.loads((out / "config.json").read_text())
    assert config["lam"] == 1.0 and config["steps"] == 5 and config["grid"] == "consistent"
    for name in ("edited.png", "source.png", "figure.png"):
        assert Image.open(out / name).size[1] == 32 + (4 if name == "figure.png" else 0)


def test_edit_is_deterministic_and_the_flags_reach_the_config(image, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    base = ["edit", "--checkpoint", "sd-tiny", "--image", str(image), "--prompt", "a dog", *FAST]
    knobs = ["--guidance", "5", "--lam", "0.3", "--inject-steps", "2", "--grid", "official"]
    for out in outs:
        assert main([*base, *knobs, "--steps", "4", "--inv-steps", "4", "--out", str(out)]) == 0
    assert (outs[0] / "edited.png").read_bytes() == (outs[1] / "edited.png").read_bytes()
    config = json.loads((outs[0] / "config.json").read_text())
    assert (config["guidance"], config["lam"], config["inject_steps"]) == (5.0, 0.3, 2)
    assert (config["grid"], config["steps"], config["inv_steps"]) == ("official", 4, 4)
    big = ["--set", "lam=0.0", "--set", "image_size=48", "--out", str(tmp_path / "c")]
    assert main([*base, *big]) == 0
    assert json.loads((tmp_path / "c" / "config.json").read_text())["lam"] == 0.0
    assert Image.open(tmp_path / "c" / "edited.png").size == (48, 48)


def test_sweep_writes_the_grid_and_the_tradeoff(image, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--checkpoint", "sd-tiny", "--image", str(image), "--prompt", "a dog", *FAST]
    values = ["--guidance-values", "1,4", "--lam-values", "0,1", "--dtype", "float64"]
    assert main([*args, *values, "--out", str(out)]) == 0
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert [(r["guidance"], r["lam"]) for r in rows] == [(1, 0), (1, 1), (4, 0), (4, 1)]
    assert all(r["latent_rel"] < 1e-10 for r in rows if r["lam"] == 1)
    assert all(r["latent_rel"] > 1e-2 for r in rows if r["lam"] == 0)
    assert (out / "grid.png").is_file() and (out / "tradeoff.png").is_file()


def test_cite_and_registry(capsys):
    assert main(["cite"]) == 0
    printed = capsys.readouterr().out
    assert "2211.07825" in printed and "Denton" in printed and printed.strip() == BIBTEX.strip()
    paper = papers.get("direct_inversion")
    assert paper.arxiv == "2211.07825"


def test_load_model_sources(model_dir, tmp_path):
    sd = load_model(model_dir, dtype=torch.float64)
    assert sd.dtype == torch.float64 and sd.scheduler.steps_offset == 1
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"")
    with pytest.raises(ValueError, match="--tokenizer"):
        load_model(single)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model(tmp_path / "absent")


BAD = [
    (["--checkpoint", "sd-tiny", "--preset", "huge"], "unknown preset"),
    (["--checkpoint", "sd-tiny", "--set", "colour=red"], "no field 'colour'"),
    (["--checkpoint", "sd-tiny", "--lam", "1.5"], "lam must lie in [0, 1]"),
    (["--checkpoint", "sd-tiny", "--lam", "nan"], "lam"),
    (["--checkpoint", "sd-tiny", "--steps", "0", "--inv-steps", "0"], "steps"),
    (["--checkpoint", "sd-tiny", "--steps", "5", "--inv-steps", "4"], "steps == inv_steps"),
    (["--checkpoint", "sd-tiny", "--inject-steps", "6"], "inject_steps"),
    (["--checkpoint", "sd-tiny", "--inject-steps", "-1"], "inject_steps"),
    (["--checkpoint", "sd-tiny", "--grid", "exact"], "grid must be one of"),
    (["--checkpoint", "sd-tiny", "--grid", "official", "--steps", "3", "--inv-steps", "3"], "1000"),
    (["--checkpoint", "sd-tiny", "--dtype", "float8"], "unknown --dtype"),
    (["--checkpoint", "sd-tiny", "--set", "image_size=30"], "multiple of 8"),
    (["--checkpoint", "sd-tiny", "--set", "image_size=0"], "image_size"),
    ([], "--checkpoint is required"),
    (["--checkpoint", "MISSING"], "checkpoint not found"),
    (["--checkpoint", "TEXTFILE"], "not a diffusers folder nor a CompVis file"),
    (["--checkpoint", "EMPTYDIR"], "model_index.json"),
    (["--checkpoint", "COMPVIS"], "--tokenizer"),
    (["--checkpoint", "COMPVIS", "--tokenizer", "MODEL/tokenizer"], "cross-attention width"),
]


@pytest.mark.parametrize("command", ["edit", "sweep"])
@pytest.mark.parametrize("extra, message", BAD)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    command, extra, message, image, model_dir, tmp_path, capsys
):
    _check_bad(command, extra, message, image, model_dir, tmp_path, capsys)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--checkpoint", "sd-tiny", "--lam-values", "0,2"], "lam must lie in [0, 1]"),
        (["--checkpoint", "sd-tiny", "--guidance-values", "1,x"], "--guidance-values"),
        (["--checkpoint", "sd-tiny", "--lam-values", ","], "--lam-values is empty"),
    ],
)
def test_bad_sweep_values(extra, message, image, model_dir, tmp_path, capsys):
    _check_bad("sweep", extra, message, image, model_dir, tmp_path, capsys)


@pytest.mark.parametrize("which", ["missing", "not an image"])
def test_bad_image(which, model_dir, tmp_path, capsys):
    path = tmp_path / "in.png"
    if which == "not an image":
        path.write_text("hello")
    message = "image not found" if which == "missing" else "cannot read image"
    _check_bad("edit", ["--checkpoint", "sd-tiny"], message, path, model_dir, tmp_path, capsys)


def _check_bad(command, extra, message, image, model_dir, tmp_path, capsys):
    from safetensors.torch import save_file

    from diffrepro.core.models.compvis import unet_key_to_compvis

    (tmp_path / "notes.txt").write_text("a text file")
    (tmp_path / "empty").mkdir(exist_ok=True)
    sd = tiny_stable_diffusion()
    unet = {
        "model.diffusion_model." + unet_key_to_compvis(k, sd.unet.config): v.contiguous()
        for k, v in sd.unet.state_dict().items()
    }
    save_file(unet, str(tmp_path / "tiny.safetensors"))
    names = {
        "MISSING": str(tmp_path / "absent"),
        "TEXTFILE": str(tmp_path / "notes.txt"),
        "EMPTYDIR": str(tmp_path / "empty"),
        "COMPVIS": str(tmp_path / "tiny.safetensors"),
        "MODEL/tokenizer": str(model_dir / "tokenizer"),
    }
    extra = [names.get(a, a) for a in extra]
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "edited.png").write_bytes(b"an earlier result")
    before = snapshot(tmp_path)
    args = [command, "--image", str(image), "--prompt", "a cat", "--out", str(out)]
    code = main([*args, "--preset", "tiny", *extra])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("direct-inversion: error:"), err
    assert message in lines[0]
    assert snapshot(tmp_path) == before


def test_citation_file_is_the_registered_bibtex():
    from pathlib import Path

    assert (Path(__file__).parents[1] / "CITATION.bib").read_text() == BIBTEX


def test_line_plot_draws_finite_points_only(tmp_path):
    from diffrepro.direct_inversion.plot import line_plot

    path = line_plot(
        {"a": [(0, 1), (1, 2)], "b": [(0.5, 0.5)]}, tmp_path / "p.png", xlabel="x", ylabel="y"
    )
    assert Image.open(path).size == (560, 400)
    with pytest.raises(ValueError, match="finite"):
        line_plot({"a": [(0, float("nan"))]}, tmp_path / "q.png", xlabel="x", ylabel="y")
    assert not (tmp_path / "q.png").exists()
