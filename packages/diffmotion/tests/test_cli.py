import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from diffrepro.diffmotion.audio import write_wav
from diffrepro.diffmotion.bvh import Joint, Skeleton, read_bvh
from diffrepro.diffmotion.cli import main
from diffrepro.diffmotion.paper import PAPER
from diffrepro.diffmotion.skeleton import UPPER_BODY, upper_body_skeleton
from diffrepro.diffmotion.speech import prosody_signal

CITATION = Path(__file__).resolve().parents[1] / "CITATION.bib"


def test_cite_prints_the_bibtex_of_citation_bib(capsys):
    assert main(["cite"]) == 0
    printed = capsys.readouterr().out
    assert "zhang2023diffmotion" in printed
    if CITATION.is_file():  # run from the repository
        assert CITATION.read_text().strip() == PAPER.bibtex.strip() == printed.strip()


XYZ = ("Xrotation", "Yrotation", "Zrotation")


def user_skeleton() -> Skeleton:
    """The built-in skeleton with other offsets, XYZ channel orders and an extra leg joint."""
    joints = [
        Joint(
            j.name,
            j.parent,
            tuple(1.5 * o for o in j.offset),
            tuple(c for c in j.channels if c.endswith("position")) + XYZ,
            j.end_site,
        )
        for j in upper_body_skeleton().joints
    ]
    joints.append(
        Joint(
            "RightUpLeg",
            0,
            (-10.0, -5.0, 0.0),
            ("Zrotation", "Xrotation", "Yrotation"),
            (0, -40, 0),
        )
    )
    return Skeleton(tuple(joints))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    code = main(
        ["train", "--preset", "tiny", "--set", "steps=2", "--utterances", "2", "--out", str(out)]
    )
    assert code == 0
    return out  # the run folder: sample reads its latest checkpoint


def test_sample_writes_a_bvh_with_the_given_skeleton_and_the_audio_length(tmp_path, checkpoint):
    from diffrepro.diffmotion.bvh import Motion, write_bvh

    skeleton = user_skeleton()
    write_bvh(
        Motion(skeleton, 1 / 60, np.zeros((1, skeleton.num_channels))), tmp_path / "skeleton.bvh"
    )
    audio = prosody_signal(1.2, np.random.default_rng(0), 22050)  # a rate 20 fps does not divide
    write_wav(tmp_path / "speech.wav", audio, 22050)
    out = tmp_path / "gesture.bvh"
    code = main(
        [
            "sample",
            "--audio",
            str(tmp_path / "speech.wav"),
            "--out",
            str(out),
            "--checkpoint",
            str(checkpoint),
            "--skeleton",
            str(tmp_path / "skeleton.bvh"),
            "--steps",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    motion = read_bvh(out)
    assert motion.skeleton == read_bvh(tmp_path / "skeleton.bvh").skeleton
    assert abs(motion.fps - 20.0) < 1e-6
    assert motion.num_frames == int(1.2 * 16000) // 800 + 1  # resampled to 16 kHz, hop 800
    assert np.any(motion.values != 0.0)


def test_bad_input_is_one_clear_error_line(tmp_path, checkpoint, capsys):
    weights = checkpoint / "checkpoints" / "step_0000002" / "model.safetensors"
    code = main(
        [
            "sample",
            "--audio",
            str(tmp_path / "missing.wav"),
            "--out",
            str(tmp_path / "x.bvh"),
            "--checkpoint",
            str(weights),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "WAV file not found" in err and "missing.wav" in err
    assert main(["train", "--preset", "huge"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    (tmp_path / "speech.wav").write_bytes(b"RIFF")
    code = main(
        [
            "sample",
            "--audio",
            str(tmp_path / "speech.wav"),
            "--out",
            str(tmp_path / "x.bvh"),
            "--checkpoint",
            str(weights),
            "--reduce",
            "none",
            "--samples-per-frame",
            "4",
        ]
    )
    assert code == 2
    empty = tmp_path / "empty_run"
    empty.mkdir()
    capsys.readouterr()
    audio = str(write_wav(tmp_path / "ok.wav", np.zeros(1600, np.float32), 16000))
    code = main(["sample", "--audio", audio, "--out", "x.bvh", "--checkpoint", str(empty)])
    assert code == 2
    assert "no training checkpoint in" in capsys.readouterr().err


def test_train_writes_its_config_beside_the_checkpoints(checkpoint):
    from diffrepro.core.config import config_to_dict
    from diffrepro.diffmotion.config import PRESETS

    expected = config_to_dict(dataclasses.replace(PRESETS["tiny"], steps=2))
    assert json.loads((checkpoint / "config.json").read_text()) == expected
    for folder in (checkpoint / "checkpoints").glob("step_*"):
        assert json.loads((folder / "config.json").read_text()) == expected


def test_train_rejects_a_checkpoint_in_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--preset", "tiny", "--checkpoint", "/nonexistent", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--checkpoint /nonexistent" in err
    assert not out.exists()
    main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--checkpoint" not in help_text and "--set steps=2000" in help_text


def test_synthetic_training_data_is_identical_run_to_run():
    from diffrepro.diffmotion.data import synthetic_utterances, training_clips

    runs = [synthetic_utterances(2, 5, UPPER_BODY) for _ in range(2)]
    for a, b in zip(*runs):
        assert np.array_equal(a.audio, b.audio) and np.array_equal(a.poses, b.poses)
    clips = [training_clips(r, 20, 10, UPPER_BODY, mirror=True) for r in runs]
    assert all(np.array_equal(x, y) for x, y in zip(clips[0], clips[1]))
