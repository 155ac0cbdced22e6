"""Regenerate ``logmel_reference.json``: librosa's log-mel features of a fixed test signal.

The test suite compares :func:`diffrepro.diffmotion.audio.log_mel` with these numbers, so the
reference comes from an independent, well-kept implementation (librosa), not from our code.
librosa is not a dependency of the package; run this script with it added, from the
repository root::

    uv run --with librosa python packages/diffmotion/tests/data/make_logmel_reference.py
"""

import json
from pathlib import Path

import numpy as np

RATE, FPS, N_FFT, N_MELS, FMAX = 16000, 20, 2048, 27, 8000.0


def test_signal() -> np.ndarray:
    """0.6 s: a 440 Hz tone, a 3 kHz tone after 0.3 s, and a quiet linear chirp (float32)."""
    t = np.arange(int(0.6 * RATE)) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t) * (t > 0.3)
    chirp = 0.05 * np.sin(2 * np.pi * (200 * t + 4000 * t**2))
    return (tone + chirp).astype(np.float32)


def main() -> None:
    import librosa

    audio = test_signal()
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=RATE,
        n_fft=N_FFT,
        hop_length=RATE // FPS,
        n_mels=N_MELS,
        fmin=0.0,
        fmax=FMAX,
        power=2.0,
        center=True,
        pad_mode="constant",
    )
    features = np.log(mel + 1e-10).T  # natural log, (frames, bands)
    out = Path(__file__).with_name("logmel_reference.json")
    data = {
        "librosa_version": librosa.__version__,
        "log_mel": [[round(float(v), 6) for v in row] for row in features],
    }
    out.write_text(json.dumps(data) + "\n")
    print(f"wrote {out}: {features.shape}")


if __name__ == "__main__":
    main()
