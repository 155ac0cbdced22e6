"""The command line, the paper registration and the demo smoke run."""

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from diffrepro.vidm.cli import main
from diffrepro.vidm.paper import BIBTEX, PAPER

CITATION = Path(__file__).resolve().parents[1] / "CITATION.bib"


def test_cite_prints_the_bibtex_which_matches_citation_bib(capsys):
    assert main(["cite"]) == 0
    assert "mei2023vidm" in capsys.readouterr().out
    if CITATION.is_file():
        assert CITATION.read_text().strip() == BIBTEX.strip()


def test_bad_input_gives_one_clear_error_line(capsys, tmp_path):
    assert main(["train", "--stage", "motion", "--preset", "huge"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert (
        main(["train", "--stage", "motion", "--preset", "tiny", "--set", "motion.num_frames=2"])
        == 2
    )
    assert "exceeds motion.num_frames" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "no motion checkpoint" in err and len(err.strip().splitlines()) == 1


def test_train_both_stages_then_sample_from_scratch_and_from_a_first_frame(tmp_path, capsys):
    run = tmp_path / "run"
    for stage in ("content", "motion"):
        assert main(["train", "--stage", stage, "--preset", "tiny", "--out", str(run)]) == 0
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(run),
                "--frames",
                "3",
                "--num",
                "2",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    gif = Image.open(tmp_path / "s" / "videos.gif")
    assert gif.n_frames == 3 and gif.size == (17, 8)
    Image.new("RGB", (20, 12), (200, 10, 10)).save(tmp_path / "first.png")
    out = tmp_path / "f"
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(run),
                "--frames",
                "2",
                "--first",
                str(tmp_path / "first.png"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out / "frames.png").size == (17, 8)
    assert "videos of" in capsys.readouterr().out
    bad = tmp_path / "bad"
    for flags in (
        ["--frames", "0"],
        ["--num", "0"],
        ["--set", "generation.frames=0"],
        ["--set", "generation.num_videos=0"],
        ["--frames", "-2"],
    ):
        code = main(["sample", "--checkpoint", str(run), "--out", str(bad), *flags])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, flags
        assert "frames" in err or "num" in err, flags
    assert not bad.exists()  # zero is an error, never replaced by the default


def test_help_examples_work_and_train_does_not_offer_checkpoint(tmp_path, capsys):
    main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--checkpoint" not in text and "--set train.steps=100" in text
    argv = ["train", "--stage", "content", "--preset", "tiny", "--out", str(tmp_path)]
    assert main([*argv, "--set", "train.steps=1", "--set", "motion.num_frames=16"]) == 0
    capsys.readouterr()  # the training run's progress lines
    assert main([*argv, "--checkpoint", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_demo_quick_writes_the_report_figures_and_metrics(tmp_path):
    result = PAPER.run_demo(tmp_path, quick=True)
    for name in ("report.md", "metrics.json", "frames.png", "videos.gif", "samples.png"):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["seeds"]) == 2 and metrics["feature_space"] == "seeded random conv features"
    probe = metrics["summary"]["probe"]["motion"]["600"]
    assert set(probe) == {"real", "shuffled_first", "zero_flow", "copy_first", "copy_previous"}
    assert set(metrics["summary"]["videos"]) == {
        "real",
        "shuffled_first",
        "zero_flow",
        "copy_first",
    }
    copy = metrics["seeds"][0]["videos"]["copy_first"]
    assert copy["temporal_change"] == 0 and copy["mse"] > 0
    assert metrics["summary"]["videos"]["real"]["fd_proxy"]["sd"] >= 0
    text = result.report.read_text()
    assert "Does the motion generator use its conditioning?" in text and "not FVD" in text
    assert "Paper vs ours" in text and result.headline
    assert not re.search(r"\b(nan|inf)\b", text.lower())  # ("banana" is fine)
    assert any((tmp_path / "tb").iterdir())


@pytest.mark.parametrize("argv", [["train", "--stage", "audio"], ["sample", "--frames", "x"]])
def test_argument_errors_exit_with_one_line(argv, capsys):
    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
