import numpy as np
import pytest

from diffrepro.diffmotion.audio import write_wav
from diffrepro.diffmotion.bvh import write_bvh
from diffrepro.diffmotion.coupling import ENERGY_LOUD, ENERGY_SILENCE, speech_drive
from diffrepro.diffmotion.data import folder_utterances, synthetic_utterances, training_clips
from diffrepro.diffmotion.gestures import loudness, onsets
from diffrepro.diffmotion.metrics import pearson, positions, wrist_height
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


def test_synthetic_arms_rise_with_the_speech_drive(utterances):
    """The known coupling: wrist height follows the drive of the own speech, not another's."""
    skeleton = upper_body_skeleton()
    heights = [wrist_height(positions(u.poses, skeleton, UPPER_BODY, 20), skeleton) for u in
               utterances]  # fmt: skip
    drives = [speech_drive(u.speech, 20) for u in utterances]
    own = [pearson(h, d) for h, d in zip(heights, drives)]
    n = min(len(h) for h in heights)
    other = [pearson(heights[k][:n], drives[(k + 1) % 3][:n]) for k in range(3)]
    assert min(own) > 0.8
    assert np.mean(own) > np.mean(other) + 0.4


def test_speech_drive_is_the_documented_function_of_the_log_mel_energy():
    bands = 27
    # log summed mel power per frame: silence, then a ramp, then loud; the drive smooths over
    # 8 frames (0.4 s at 20 fps), centred, with the edge frames repeated
    energy = np.concatenate([np.full(10, -5.0), np.linspace(-3.0, 7.5, 11), np.full(10, 9.0)])
    speech = np.repeat((energy - np.log(bands))[:, None], bands, axis=1)
    level = np.clip((energy - ENERGY_SILENCE) / (ENERGY_LOUD - ENERGY_SILENCE), 0, 1)
    padded = np.concatenate([np.full(4, level[0]), level, np.full(3, level[-1])])
    expected = np.array([padded[i : i + 8].mean() for i in range(len(level))])
    np.testing.assert_allclose(speech_drive(speech, 20), expected, atol=1e-9)


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
