import numpy as np
import pytest
import torch
from PIL import Image

from diffrepro.maskgit.config import TINY
from diffrepro.maskgit.loading import save_model
from diffrepro.maskgit.transformer import MaskGitTransformer
from diffrepro.maskgit.vqgan import VQGAN
from diffrepro.masksketch.cli import main
from diffrepro.masksketch.paper import BIBTEX


def write_image(path, size=16, width=None, seed=0):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size, width or size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    save_model(root / "tr.safetensors", MaskGitTransformer(TINY.transformer), "transformer")
    save_model(root / "tok.safetensors", VQGAN(TINY.tokenizer), "tokenizer")
    write_image(root / "sketch.png", 32)
    write_image(root / "wide.png", 16, 24)
    (root / "garbage.safetensors").write_bytes(b"not a checkpoint")
    return root


def common(root):
    return [
        "--checkpoint", str(root / "tr.safetensors"),
        "--tokenizer", str(root / "tok.safetensors"),
        "--preset", "tiny",
    ]  # fmt: skip


def test_cite_prints_the_bibtex(capsys):
    assert main(["cite"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == BIBTEX.strip() and "bashkirova2023masksketch" in out


def test_generate_writes_the_best_candidate_and_is_deterministic(files, tmp_path, capsys):
    argv = ["generate", "--sketch", str(files / "sketch.png"), "--class", "2", *common(files)]
    assert main([*argv, "--candidates", "3", "--lambda-s", "0", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "candidate" in out and "of 3 by structure" in out
    for name in ("best.png", "candidates.png", "comparison.png", "masksketch_config.json"):
        assert (tmp_path / "a" / name).is_file(), name
    cfg = (tmp_path / "a" / "masksketch_config.json").read_text()
    assert '"lambda_structure": 0.0' in cfg and '"candidates": 3' in cfg  # 0 is honoured
    assert main([*argv, "--candidates", "3", "--lambda-s", "0", "--out", str(tmp_path / "b")]) == 0
    a = np.asarray(Image.open(tmp_path / "a" / "best.png"))
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "b" / "best.png")))


def test_generate_from_a_photo_edge_map(files, tmp_path):
    argv = ["generate", "--sketch", str(files / "sketch.png"), "--class", "0", *common(files)]
    assert main([*argv, "--edges", "sobel", "--scorer", "random", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "best.png").is_file()


def snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


BAD = [
    (["--sketch", "{root}/none.png", "--class", "0", "{models}"], "not found"),
    (["--sketch", "{root}/wide.png", "--class", "0", "{models}"], "must be square"),
    (["--sketch", "{root}/garbage.safetensors", "--class", "0", "{models}"], "cannot read image"),
    (["--sketch", "{sketch}", "--class", "3", "{models}"], "class labels must lie in [0, 3)"),
    (["--sketch", "{sketch}", "--class", "-1", "{models}"], "class labels"),
    (["--sketch", "{sketch}", "--class", "0", "--lambda-s", "1.5", "{models}"], "lambda_structure"),
    (["--sketch", "{sketch}", "--class", "0", "--lambda-s", "nan", "{models}"], "finite"),
    (["--sketch", "{sketch}", "--class", "0", "--lambda-s", "-0.1", "{models}"], "[0, 1]"),
    (["--sketch", "{sketch}", "--class", "0", "--candidates", "0", "{models}"], "positive"),
    (["--sketch", "{sketch}", "--class", "0", "--steps", "0", "{models}"], "positive"),
    (["--sketch", "{sketch}", "--class", "0", "--guidance", "-1", "{models}"], "guidance_scale"),
    (["--sketch", "{sketch}", "--class", "0", "--mode", "kl", "{models}"], "structure_mode"),
    (["--sketch", "{sketch}", "--class", "0", "--layers", "5", "{models}"], "do not exist"),
    (["--sketch", "{sketch}", "--class", "0", "--layers", "a,b", "{models}"], "layer indices"),
    (["--sketch", "{sketch}", "--class", "0", "--scorer", "clip", "{models}"], "scorer must be"),
    (
        ["--sketch", "{sketch}", "--class", "0", "--scorer", "classifier", "{models}"],
        "needs the zoo emoji models",
    ),
    (["--sketch", "{sketch}", "--class", "0", "--edges", "laplace", "{models}"], "invalid choice"),
    (
        ["--sketch", "{sketch}", "--class", "0", "--checkpoint", "{root}/tr.safetensors"],
        "go together",
    ),
    (
        [
            "--sketch", "{sketch}", "--class", "0", "--checkpoint", "{root}/tok.safetensors",
            "--tokenizer", "{root}/tok.safetensors",
        ],
        "not a MaskGIT transformer",
    ),
    (
        [
            "--sketch", "{sketch}", "--class", "0", "--checkpoint", "{root}/garbage.safetensors",
            "--tokenizer", "{root}/tok.safetensors",
        ],
        "garbage.safetensors",
    ),
    (["--sketch", "{sketch}", "--class", "0", "{models}", "--preset", "huge"], "unknown preset"),
    (["--sketch", "{sketch}", "--class", "0", "{models}", "--set", "nope=1"], "no field 'nope'"),
    (
        ["--sketch", "{sketch}", "--class", "0", "{models}", "--set", "min_mask_rate=0.99"],
        "exceeds max_mask_rate",
    ),
    (["--sketch", "{sketch}", "--class", "0", "{models}", "--device", "tpu"], "unknown device"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(files, capsys, argv, message):
    args = ["generate"]
    for a in argv:
        if a == "{models}":
            args += common(files)
        else:
            args.append(a.format(root=files, sketch=files / "sketch.png"))
    before = snapshot(files)
    capsys.readouterr()
    assert main([*args, "--out", str(files / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("masksketch"), err
    assert ": error: " in err and "Traceback" not in err
    assert message in err, err
    assert snapshot(files) == before
