import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.core.checkpoints import load_checkpoint
from diffrepro.core.finetune_fixtures import check_demo_needs_built_zoo, check_fails_cleanly
from diffrepro.core.finetune_fixtures import write_rgba_image as write_image
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.imagic.cli import main
from diffrepro.imagic.paper import BIBTEX

TINY = ["--preset", "tiny"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    image = write_image(root / "in.png")
    out = root / "run"
    argv = ["train", "--image", str(image), "--prompt", "a photo of a red cat", *TINY]
    assert main([*argv, "--out", str(out), "--seed", "1"]) == 0
    (root / "garbage.png").write_bytes(b"not an image")
    (root / "empty").mkdir()
    return root, image, out


def test_train_saves_embeddings_and_a_diffusers_unet(trained):
    root, image, out = trained
    state, meta = load_checkpoint(out / "embeddings.safetensors")
    assert set(state) == {"e_tgt", "e_opt"} and meta["prompt"] == "a photo of a red cat"
    assert not torch.equal(state["e_tgt"], state["e_opt"])
    unet = UNet2DConditionModel.from_pretrained(out / "unet")
    assert (out / "unet" / "config.json").is_file()
    assert sum(p.numel() for p in unet.parameters()) > 0
    assert list((out / "stage_a" / "tb").iterdir()) and list((out / "stage_b" / "tb").iterdir())


def test_sample_is_seeded_and_eta_zero_differs_from_one(trained, capsys):
    root, image, out = trained
    argv = ["sample", "--finetuned", str(out), *TINY, "--eta", "0", "1"]
    assert main([*argv, "--out", str(root / "s1")]) == 0
    assert "extrapolates" not in capsys.readouterr().err
    assert main([*argv, "--out", str(root / "s2")]) == 0
    a = np.asarray(Image.open(root / "s1" / "eta_0_seed_0.png"))
    assert np.array_equal(a, np.asarray(Image.open(root / "s2" / "eta_0_seed_0.png")))
    b = np.asarray(Image.open(root / "s1" / "eta_1_seed_0.png"))
    assert not np.array_equal(a, b) and (root / "s1" / "samples.png").is_file()
    capsys.readouterr()
    assert (
        main(["sample", "--finetuned", str(out), *TINY, "--eta", "1.2", "--out", str(root / "s3")])
        == 0
    )
    assert "eta 1.2 extrapolates" in capsys.readouterr().err


def test_edit_runs_all_three_stages_and_ablation_flags(trained):
    root, image, out = trained
    argv = ["edit", "--image", str(image), "--prompt", "a photo of a dog", *TINY, "--eta", "0.7"]
    assert main([*argv, "--out", str(root / "e"), "--no-stage-b"]) == 0
    assert (root / "e" / "eta_0.7_seed_0.png").is_file() and not (root / "e" / "unet").exists()
    assert main([*argv, "--out", str(root / "f"), "--no-stage-a"]) == 0
    state, _ = load_checkpoint(root / "f" / "embeddings.safetensors")
    assert torch.equal(state["e_tgt"], state["e_opt"])


def test_cite_prints_the_bibtex(capsys):
    assert main(["cite"]) == 0
    assert capsys.readouterr().out.strip() == BIBTEX.strip() and "kawar2023imagic" in BIBTEX


def bad_cases(root, image, out):
    train = ["train", "--image", str(image), "--prompt", "a cat", *TINY]
    sample = ["sample", "--finetuned", str(out), *TINY]
    return {
        "missing image": (["train", "--image", str(root / "no.png"), "--prompt", "a"], "no.png"),
        "garbage image": ([*train[:2], str(root / "garbage.png"), *train[3:]], "cannot read"),
        "empty prompt": ([*train[:4], "  ", *train[5:]], "--prompt is empty"),
        "long prompt": ([*train[:4], "a cat " * 40, *train[5:]], "more than the text encoder"),
        "zero steps": ([*train, "--set", "embed_steps=0"], "embed_steps must be an integer >= 1"),
        "negative lr": ([*train, "--set", "finetune_lr=-1"], "finetune_lr must be a positive"),
        "bad latents": ([*train, "--set", "latents=mode"], "latents must be one of"),
        "guidance below 1": ([*train, "--set", "guidance_scale=0.5"], "guidance_scale"),
        "odd resolution": ([*train, "--set", "resolution=30"], "multiple of"),
        "unknown preset": ([*train[:5], "--preset", "huge"], "known presets"),
        "unknown field": ([*train, "--set", "nope=1"], "has no field"),
        "unknown zoo model": ([*train, "--model", "emoji-nope"], "unknown zoo entry"),
        "missing checkpoint": ([*train, "--checkpoint", str(root / "x" / "m.ckpt")], "not found"),
        "single file without tokenizer": (
            [*train, "--checkpoint", str(root / "garbage.png")],
            "not a diffusers folder",
        ),
        "model and checkpoint": (
            [*train, "--model", "sd-tiny", "--checkpoint", str(out)],
            "give one",
        ),
        "run exists": ([*train, "--out", str(out)], "already holds an Imagic run"),
        "sample missing run": (["sample", "--finetuned", str(root / "nope"), *TINY], "not found"),
        "sample not a run": (
            ["sample", "--finetuned", str(root / "empty"), *TINY],
            "not an Imagic run",
        ),
        "nan eta": ([*sample, "--eta", "nan"], "finite"),
        "bad dtype": ([*sample, "--set", "dtype=int8"], "dtype must be one of"),
    }


CASES = list(bad_cases(*(__import__("pathlib").Path(p) for p in ("r", "i", "o"))))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(trained, case, capsys):
    root, image, out = trained
    argv, message = bad_cases(root, image, out)[case]
    if case != "run exists":
        argv = [*argv, "--out", str(root / "bad-out")]
    check_fails_cleanly(main, argv, root, prog="imagic", message=message, capsys=capsys)


def test_demo_without_a_built_zoo_fails_cleanly(tmp_path, monkeypatch, capsys):
    check_demo_needs_built_zoo(main, tmp_path, monkeypatch, capsys)
