import numpy as np
import pytest

from diffrepro.diffmotion.audio import (
    DEFAULT_MEL,
    MelConfig,
    hz_to_mel,
    log_mel,
    mel_to_hz,
    read_wav,
    resample_audio,
    speech_features,
    write_wav,
)


def tone(freq, rate, seconds=1.0):
    return np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate).astype(np.float32)


def band_centres(cfg: MelConfig = DEFAULT_MEL):
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))
    return edges[1:-1]


@pytest.mark.parametrize("freq", [300.0, 1500.0, 5000.0])
def test_pure_tone_peaks_in_its_mel_band(freq):
    features = log_mel(tone(freq, 16000), 16000)
    expected = int(np.argmin(np.abs(band_centres() - freq)))
    assert features.shape == (16000 // 800 + 1, 27)
    assert np.all(np.abs(features[2:-2].argmax(axis=1) - expected) <= 1)
    assert features[5, expected] > features[5].mean() + 5.0  # natural log: a clear peak


def test_frame_count_is_samples_over_hop_plus_one_at_20_fps():
    for rate in (16000, 44100, 48000):
        audio = np.zeros(int(rate * 1.37), np.float32)
        assert log_mel(audio, rate).shape[0] == len(audio) // (rate // 20) + 1


def test_rate_not_divisible_by_fps_is_resampled_and_keeps_duration():
    audio = tone(440.0, 22050, 2.5)
    with pytest.raises(ValueError, match="not divisible by 20 fps"):
        log_mel(audio, 22050)
    resampled = resample_audio(audio, 22050, 16000)
    assert len(resampled) == 40000
    reference = tone(440.0, 16000, 2.5)
    np.testing.assert_allclose(resampled[200:-200], reference[200:-200], atol=1e-3)
    features = speech_features(audio, 22050)
    assert features.shape[0] == 40000 // 800 + 1


def test_resampling_removes_content_above_the_new_nyquist():
    high = tone(10000.0, 22050, 1.0)  # above 8 kHz, the Nyquist rate of 16 kHz
    assert np.abs(resample_audio(high, 22050, 16000)[200:-200]).max() < 0.02


def test_wav_write_read_round_trip(tmp_path):
    audio = 0.5 * tone(220.0, 16000, 0.3)
    data, rate = read_wav(write_wav(tmp_path / "t.wav", audio, 16000))
    assert rate == 16000
    np.testing.assert_allclose(data, audio, atol=1 / 32767)


def test_bad_wav_is_a_clear_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match="bad.wav: not a readable PCM WAV"):
        read_wav(tmp_path / "bad.wav")
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_wav(tmp_path / "nope.wav")
