import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffrepro.core.finetune_fixtures import check_demo_needs_built_zoo, check_fails_cleanly
from diffrepro.core.finetune_fixtures import write_rgba_image as write_image
from diffrepro.core.models.sd_unet import UNet2DConditionModel
from diffrepro.sine.cli import main
from diffrepro.sine.paper import BIBTEX

TINY = ["--preset", "tiny"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    image = write_image(root / "in.png")
    train = ["train", "--image", str(image), "--class-word", "dog", *TINY]
    assert main([*train, "--out", str(root / "plain")]) == 0
    assert main([*train, "--out", str(root / "patch"), "--patch"]) == 0
    (root / "garbage.png").write_bytes(b"not an image")
    (root / "empty").mkdir()
    return root, image


def test_train_writes_diffusers_components_and_meta(trained):
    root, _ = trained
    for name, patch in (("plain", False), ("patch", True)):
        meta = json.loads((root / name / "sine.json").read_text())
        assert meta["patch"] is patch and meta["caption"] == "photo of a sks dog"
        UNet2DConditionModel.from_pretrained(root / name / "unet")  # plain diffusers keys
        assert (root / name / "text_encoder" / "model.safetensors").is_file()
    assert json.loads((root / "patch" / "sine.json").read_text())["init_size"] == 16


def test_edit_is_seeded_and_v_changes_the_result(trained):
    root, _ = trained
    argv = ["edit", "--finetuned", str(root / "plain"), "--prompt", "a photo of a cat", *TINY]
    assert main([*argv, "--v", "0.6", "--k", "0", "--out", str(root / "e1")]) == 0
    assert main([*argv, "--v", "0.6", "--k", "0", "--out", str(root / "e2")]) == 0
    assert main([*argv, "--v", "0", "--k", "0", "--out", str(root / "e3")]) == 0
    read = lambda d: np.asarray(Image.open(root / d / "edit_seed_0.png"))  # noqa: E731
    assert np.array_equal(read("e1"), read("e2")) and not np.array_equal(read("e1"), read("e3"))


def test_edit_with_two_guides_and_another_size(trained):
    root, _ = trained
    argv = [
        "edit", "--finetuned", str(root / "plain"), "--finetuned", str(root / "patch"),
        "--prompt", "a photo of a cat", "--v", "0.3", "--v", "0.4", "--k", "400",
        "--height", "48", "--width", "32", *TINY, "--out", str(root / "multi"),
    ]  # fmt: skip
    assert main(argv) == 0
    assert Image.open(root / "multi" / "edit_seed_0.png").size == (32, 48)


def test_sample_the_finetuned_model_alone(trained):
    root, _ = trained
    argv = ["sample", "--finetuned", str(root / "plain"), "--prompt", "photo of a sks dog"]
    assert main([*argv, *TINY, "--out", str(root / "s")]) == 0
    assert (root / "s" / "samples.png").is_file()


def test_cite_prints_the_bibtex(capsys):
    assert main(["cite"]) == 0
    assert capsys.readouterr().out.strip() == BIBTEX.strip() and "zhang2023sine" in BIBTEX


def bad_cases(root, image):
    train = ["train", "--image", str(image), "--class-word", "dog", *TINY]
    edit = ["edit", "--finetuned", str(root / "plain"), "--prompt", "a cat", *TINY]
    return {
        "missing image": (
            ["train", "--image", str(root / "no.png"), "--class-word", "a"],
            "no.png",
        ),
        "garbage image": ([*train[:2], str(root / "garbage.png"), *train[3:]], "cannot read"),
        "two class words": ([*train[:4], "big dog", *train[5:]], "one word"),
        "zero steps": ([*train, "--set", "steps=0"], "steps must be an integer >= 1"),
        "bad crop": ([*train, "--set", "min_crop_frac=0"], "crop fractions"),
        "bad caption": ([*train, "--set", "caption=photo"], "caption must hold"),
        "bad rule": ([*train, "--set", "window_rule=open"], "window_rule must be one of"),
        "odd high res": ([*train, "--patch", "--set", "high_resolution=66"], "multiple of"),
        "unknown preset": ([*train[:5], "--preset", "huge"], "known presets"),
        "run exists": ([*train, "--out", str(root / "plain")], "already holds a SINE run"),
        "missing finetuned": (
            [*edit[:1], "--finetuned", str(root / "nope"), *edit[3:]],
            "not found",
        ),
        "not a finetuned": ([*edit[:1], "--finetuned", str(root / "empty"), *edit[3:]], "is not a"),
        "empty prompt": ([*edit[:3], "--prompt", " ", *TINY], "--prompt is empty"),
        "long prompt": ([*edit[:3], "--prompt", "a cat " * 40, *TINY], "more than the text"),
        "nan v": ([*edit, "--v", "nan"], "finite"),
        "negative k": ([*edit, "--k", "-1"], "--k"),
        "k above max": ([*edit, "--k", "2000"], "above k_max"),
        "v count": (
            [*edit, "--finetuned", str(root / "plain"), "--v", "1", "--v", "2", "--v", "3"],
            "once per --finetuned",
        ),
        "odd size": ([*edit, "--height", "30"], "multiples of"),
        "guidance below 1": ([*edit, "--set", "guidance_scale=0"], "guidance_scale"),
        "unknown zoo model": ([*edit, "--model", "emoji-nope"], "unknown zoo entry"),
    }


CASES = list(bad_cases(Path("r"), Path("i")))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(trained, case, capsys):
    root, image = trained
    argv, message = bad_cases(root, image)[case]
    if case != "run exists":
        argv = [*argv, "--out", str(root / "bad-out")]
    check_fails_cleanly(main, argv, root, prog="sine", message=message, capsys=capsys)


def test_demo_without_a_built_zoo_fails_cleanly(tmp_path, monkeypatch, capsys):
    check_demo_needs_built_zoo(main, tmp_path, monkeypatch, capsys)
