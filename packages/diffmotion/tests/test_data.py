import numpy as np
import pytest

from diffrepro.diffmotion.audio import write_wav
from diffrepro.diffmotion.bvh import write_bvh
from diffrepro.diffmotion.data import folder_utterances, synthetic_utterances, training_clips
from diffrepro.diffmotion.gestures import loudness, onsets
from diffrepro.diffmotion.metrics import (
    hand_speed,
    positions,
    speech_energy,
    speed_energy_correlation,
)
from diffrepro.diffmotion.skeleton import UPPER_BODY, upper_body_skeleton


@pytest.fixture(scope="module")
def utterances():
    return synthetic_utterances(
        3,
        0,
        UPPER_BODY,
    )


def test_synthetic_utterances_are_frame_aligned(utterances):
    for u in utterances:
        assert u.speech.shape == (len(u.audio) // (u.sample_rate // 20) + 1, 27)
        assert u.poses.shape == (u.speech.shape[0], 45)
        assert u.motion.fps == 60


def test_synthetic_gestures_follow_the_speech(utterances):
    skeleton = upper_body_skeleton()
    correlations = []
    for u in utterances:
        speed = hand_speed(positions(u.poses, skeleton, UPPER_BODY, 20), skeleton, 20)
        correlations.append(speed_energy_correlation(speed, speech_energy(u.speech)[1:], 20))
    assert np.mean(correlations) > 0.2


def test_onsets_are_found_where_loudness_rises():
    rate = 16000
    audio = np.zeros(rate * 2, np.float32)
    audio[rate // 2 : rate] = np.sin(np.arange(rate // 2) * 0.3)  # a burst from 0.5 s to 1 s
    found = onsets(loudness(audio, rate, 60, 120), 60)
    assert len(found) == 1 and abs(found[0] - 30) <= 3


def test_clips_and_mirrors(utterances):
    poses, speech = training_clips(utterances, 40, 20, UPPER_BODY, mirror=True)
    assert poses.shape[0] == speech.shape[0] and poses.shape[0] % 2 == 0
    half = poses.shape[0] // 2
    np.testing.assert_array_equal(speech[:half], speech[half:])
    assert not np.allclose(poses[:half], poses[half:])


def test_folder_dataset_reads_the_genea_layout(tmp_path, utterances):
    for u in utterances[:2]:
        write_bvh(u.motion, tmp_path / "bvh" / f"{u.name}.bvh")
        write_wav(tmp_path / "audio" / f"{u.name}.wav", u.audio, u.sample_rate)
    loaded = folder_utterances(tmp_path, UPPER_BODY)
    assert [u.name for u in loaded] == [u.name for u in utterances[:2]]
    for got, want in zip(loaded, utterances):
        np.testing.assert_allclose(got.poses, want.poses, atol=1e-5)
        np.testing.assert_allclose(got.speech, want.speech, atol=1e-2)
    with pytest.raises(ValueError, match="no BVH \\+ WAV pairs"):
        folder_utterances(tmp_path / "audio", UPPER_BODY)
