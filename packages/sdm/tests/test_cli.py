import numpy as np
from PIL import Image

from diffrepro.sdm.cli import main
from diffrepro.sdm.paper import BIBTEX


def write_image(path, size=16, seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def test_cite_prints_the_bibtex(capsys):
    assert main(["cite"]) == 0
    assert capsys.readouterr().out.strip() == BIBTEX.strip()


def test_bad_input_gives_one_error_line(tmp_path, capsys):
    assert main(["inpaint", "--input", str(tmp_path / "missing.png"), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sdm: error: image not found")
    assert main(["train", "--data", str(tmp_path), "--preset", "nope"]) == 2
    assert "known presets" in capsys.readouterr().err


def test_train_then_inpaint_end_to_end(tmp_path, capsys):
    data = tmp_path / "images"
    data.mkdir()
    for i in range(3):
        write_image(data / f"{i}.png", size=20, seed=i)
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--preset", "tiny", "--out", str(run)]
    assert main([*argv, "--set", "train.steps=2", "--seed", "1"]) == 0
    checkpoint = run / "generator_ema.safetensors"
    assert checkpoint.is_file()
    saved = checkpoint.read_bytes()
    capsys.readouterr()
    assert main([*argv, "--set", "train.steps=2", "--seed", "1", "--no-resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--no-resume" in err
    again = [*argv, "--set", "train.steps=2", "--seed", "1", "--checkpoint", str(checkpoint)]
    assert main(again) == 2
    assert "already holds a run, which is resumed" in capsys.readouterr().err
    assert main([*argv, "--set", "train.steps=2", "--seed", "2"]) == 2  # resume: another seed
    assert "another config or seed" in capsys.readouterr().err
    assert checkpoint.read_bytes() == saved  # nothing lost

    image = write_image(tmp_path / "input.png")
    mask = np.full((16, 16), 255, dtype=np.uint8)
    mask[4:12, 2:10] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "inpainted"
    argv = ["inpaint", "--input", str(image), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*argv, "--mask", str(tmp_path / "mask.png")]) == 0
    result = np.asarray(Image.open(out / "inpainted.png"))
    original = np.asarray(Image.open(image))
    assert np.array_equal(result[mask == 255], original[mask == 255])  # known pixels kept
    assert (out / "iterations.png").is_file()

    assert main([*argv, "--set", "decode.steps=2"]) == 0  # generated mask
    assert (out / "mask.png").is_file()
    wrong = write_image(tmp_path / "big.png", size=24)
    assert main(["inpaint", "--input", str(wrong), "--checkpoint", str(checkpoint)]) == 2
    assert "the model takes 16×16" in capsys.readouterr().err
    assert main([*argv, "--set", "decode.nope=1"]) == 2
    assert "has no field 'nope'" in capsys.readouterr().err


def test_inpaint_without_checkpoint_needs_the_built_zoo_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIFFREPRO_ZOO_DIR", str(tmp_path / "zoo"))
    image = write_image(tmp_path / "input.png", size=32)
    assert main(["inpaint", "--input", str(image), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sdm-emoji" in err and "zoo build sdm-emoji" in err
    assert main(["inpaint", "--input", str(image), "--preset", "tiny"]) == 2
    assert "inpaint uses the zoo model sdm-emoji" in capsys.readouterr().err
    assert not (tmp_path / "zoo").exists() and not (tmp_path / "out").exists()
