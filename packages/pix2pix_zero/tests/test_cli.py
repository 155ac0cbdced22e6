"""The command line on the tiny random stack: the happy path and bad inputs (exit 2, one line,
nothing on disk changed)."""

import json

import numpy as np
import pytest
from PIL import Image

from diffrepro.pix2pix_zero.cli import main

TINY = ["--model", "sd-tiny", "--preset", "tiny"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype("uint8")).save(root / "cat.png")
    (root / "cat.txt").write_text("a photo of a cat\na cat sitting\n")
    (root / "dog.txt").write_text("a photo of a dog\n\na dog sitting\n")
    (root / "empty.txt").write_text("\n \n")
    (root / "bad.png").write_bytes(b"not an image")
    assert main(["make-direction", "--src", str(root / "cat.txt"), "--tgt",
                 str(root / "dog.txt"), "--out", str(root / "dirs"), *TINY]) == 0  # fmt: skip
    assert main(["invert", "--image", str(root / "cat.png"), "--caption", "a photo of a cat",
                 "--out", str(root / "inv"), *TINY]) == 0  # fmt: skip
    return root


def test_happy_path_writes_outputs(files):
    assert (files / "dirs" / "cat2dog.safetensors").is_file()
    out = files / "edit"
    args = [
        "edit",
        "--inversion",
        str(files / "inv" / "inversion.safetensors"),
        "--direction",
        str(files / "dirs" / "cat2dog.safetensors"),
        "--out",
        str(out),
        "--xa",
        "0.2",
        *TINY,
    ]
    assert main(args) == 0  # fmt: skip
    summary = json.loads((out / "edit.json").read_text())
    assert len(summary["xa_losses"]) == 5 and all(np.isfinite(summary["xa_losses"]))
    for name in ("edited.png", "reconstruction.png", "figure.png"):
        assert (out / name).is_file()


def test_cite_prints_bibtex(capsys):
    assert main(["cite"]) == 0
    assert "parmar2023zero" in capsys.readouterr().out


def _bad_cases(root):
    inv = str(root / "inv" / "inversion.safetensors")
    d = str(root / "dirs" / "cat2dog.safetensors")
    return {
        "missing src": (["make-direction", "--src", str(root / "nope.txt"), "--tgt",
                         str(root / "dog.txt")], "nope.txt"),
        "empty bank": (["make-direction", "--src", str(root / "empty.txt"), "--tgt",
                        str(root / "dog.txt")], "no sentences"),
        "no banks": (["make-direction"], "--src"),
        "bad task": (["make-direction", "--task", "cat-dog"], "unknown task"),
        "missing image": (["invert", "--image", str(root / "x.png"), "--caption", "a cat"],
                          "x.png"),
        "bad image": (["invert", "--image", str(root / "bad.png"), "--caption", "a cat"],
                      "bad.png"),
        "empty caption": (["invert", "--image", str(root / "cat.png"), "--caption", " "],
                          "caption"),
        "unknown preset": (["invert", "--image", str(root / "cat.png"), "--caption", "a cat",
                            "--preset", "huge"], "huge"),
        "bad override": (["invert", "--image", str(root / "cat.png"), "--caption", "a cat",
                          "--set", "inversion.grid=sideways"], "grid"),
        "zero steps": (["invert", "--image", str(root / "cat.png"), "--caption", "a cat",
                        "--set", "inversion.num_steps=0"], "num_steps"),
        "missing inversion": (["edit", "--inversion", str(root / "no.safetensors"), "--task",
                               "cat2dog"], "no.safetensors"),
        "not an inversion": (["edit", "--inversion", d, "--task", "cat2dog"], "inversion"),
        "task and direction": (["edit", "--inversion", inv, "--task", "cat2dog", "--direction",
                                d], "exactly one"),
        "neither": (["edit", "--inversion", inv], "exactly one"),
        "word not in caption": (["edit", "--inversion", inv, "--task", "horse2zebra",
                                 "--method", "ddim+word-swap"], "horse"),
        "negative xa": (["edit", "--inversion", inv, "--task", "cat2dog", "--xa", "-1"],
                        "xa_guidance"),
        "missing checkpoint": (["invert", "--image", str(root / "cat.png"), "--caption", "a cat",
                                "--checkpoint", str(root / "none")], "none"),
        "missing direction": (["edit", "--inversion", inv, "--direction", str(root / "q.st")],
                              "q.st"),
    }  # fmt: skip


CASES = list(_bad_cases(__import__("pathlib").Path("/x")))


def _snapshot(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(files, case, capsys):
    argv, needle = _bad_cases(files)[case]
    needs_model = argv[0] != "make-direction" or "--task" in argv or len(argv) > 1
    extra = ["--out", str(files / "bad_out")]
    if needs_model and "--checkpoint" not in argv:
        extra += ["--model", "sd-tiny"]
    if "--preset" not in argv:
        extra += ["--preset", "tiny"]
    before = _snapshot(files)
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pix2pix-zero: error:") and needle in err[0]
    assert _snapshot(files) == before
    assert not (files / "bad_out").exists()
