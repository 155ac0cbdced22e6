"""Speech input: WAV reading/writing, band-limited resampling and the 27-band log-mel features.

The features follow the StyleGestures pipeline that DiffMotion uses: a natural-log mel
spectrogram (librosa conventions: centred STFT with a periodic Hann window and zero padding,
power 2, Slaney mel scale and area normalisation), 27 bands from 0 to 8 kHz, ``n_fft`` 2048 and
a hop of ``sample_rate / fps`` so that one feature frame lines up with one 20 fps pose.
The hop must be an integer number of samples, so rates that ``fps`` does not divide
(espeak-ng's 22.05 kHz) are first resampled to 16 kHz.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FALLBACK_RATE = 16000


@dataclass(frozen=True)
class MelConfig:
    """Log-mel settings (defaults: the official DiffMotion / StyleGestures values)."""

    n_mels: int = 27
    n_fft: int = 2048
    fmin: float = 0.0
    fmax: float = 8000.0
    fps: int = 20
    log_eps: float = 1e-10


DEFAULT_MEL = MelConfig()


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file as mono float32 in [-1, 1] and its sample rate."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"WAV file {path} is a folder, expected a file")
    if not path.is_file():
        raise FileNotFoundError(f"WAV file not found: {path}")
    try:
        with wave.open(str(path), "rb") as f:
            rate, width, channels = f.getframerate(), f.getsampwidth(), f.getnchannels()
            raw = f.readframes(f.getnframes())
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path}: not a readable PCM WAV file ({err})") from None
    if width not in (1, 2, 3, 4) or channels < 1 or rate < 1:
        raise ValueError(f"{path}: unsupported WAV ({width}-byte samples, {channels} channels)")
    frame_bytes = width * channels
    if len(raw) % frame_bytes:
        raw = raw[: len(raw) - len(raw) % frame_bytes]  # a truncated last frame
    if not raw:
        raise ValueError(f"{path}: the WAV file holds no audio samples (empty or truncated)")
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        data = ints.astype(np.float32) / 2**23
    else:
        dtype = {2: np.int16, 4: np.int32}[width]
        data = np.frombuffer(raw, dtype).astype(np.float32) / float(2 ** (8 * width - 1))
    return data.reshape(-1, channels).mean(axis=1), rate


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio in [-1, 1] as 16-bit PCM."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(np.asarray(audio) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())
    return path


def resample_audio(
    audio: np.ndarray,
    orig_rate: int,
    new_rate: int,
    *,
    zero_crossings: int = 16,
    rolloff: float = 0.95,
    beta: float = 8.6,
    chunk: int = 1 << 16,
) -> np.ndarray:
    """Band-limited polyphase resampling with a Kaiser-windowed sinc (e.g. 22050 -> 16000 Hz).

    Output length is ``ceil(len * new_rate / orig_rate)``, so the duration is kept.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {new_rate}")
    if orig_rate == new_rate:
        return np.asarray(audio, dtype=np.float32)
    g = math.gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    cutoff = 0.5 * min(1.0, up / down) * rolloff  # cycles per input sample
    half = math.ceil(zero_crossings / (2 * cutoff))
    taps = torch.arange(-half + 1, half + 1, dtype=torch.float64)
    t = taps[None, :] - torch.arange(up, dtype=torch.float64)[:, None] / up  # (phase, tap)
    kaiser = torch.special.i0(beta * torch.sqrt(1 - (t / half).clamp(-1, 1) ** 2))
    window = kaiser / torch.special.i0(torch.tensor(beta, dtype=torch.float64))
    table = 2 * cutoff * torch.sinc(2 * cutoff * t) * window
    signal = torch.as_tensor(np.asarray(audio, dtype=np.float64))
    padded = torch.nn.functional.pad(signal, (half, half))
    n_out = math.ceil(len(signal) * up / down)
    pieces = []
    for start in range(0, n_out, chunk):
        n = torch.arange(start, min(start + chunk, n_out))
        base, phase = (n * down) // up, (n * down) % up
        index = base[:, None] + taps.long()[None, :] + half
        pieces.append((padded[index.clamp(0, len(padded) - 1)] * table[phase]).sum(-1))
    return torch.cat(pieces).numpy().astype(np.float32) if pieces else np.zeros(0, np.float32)


def feature_rate(sample_rate: int, fps: int) -> int:
    """The rate features are computed at: unchanged when ``fps`` divides it, else 16 kHz."""
    return sample_rate if sample_rate % fps == 0 else FALLBACK_RATE


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's default."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(
        mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3)
    )


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """Slaney-normalised triangular filters ``(n_mels, n_fft // 2 + 1)``."""
    if fmax > sample_rate / 2 + 1e-6:
        raise ValueError(f"fmax {fmax} Hz is above the Nyquist rate of {sample_rate} Hz audio")
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def log_mel(audio: np.ndarray, sample_rate: int, config: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """Natural-log mel spectrogram ``(frames, n_mels)``, ``frames = len // hop + 1``.

    ``sample_rate`` must be divisible by ``config.fps`` (use :func:`speech_features` for others).
    """
    if sample_rate % config.fps:
        raise ValueError(f"sample rate {sample_rate} Hz is not divisible by {config.fps} fps")
    hop = sample_rate // config.fps
    signal = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if signal.ndim != 1 or signal.numel() == 0:
        raise ValueError("audio must be a non-empty mono signal")
    spec = (
        torch.stft(
            signal,
            config.n_fft,
            hop_length=hop,
            window=torch.hann_window(config.n_fft),
            center=True,
            pad_mode="constant",
            return_complex=True,
        ).abs()
        ** 2
    )  # (freq, frames)
    bank = torch.as_tensor(
        mel_filterbank(sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax),
        dtype=torch.float32,
    )
    return torch.log(bank @ spec + config.log_eps).T.numpy()


def speech_features(
    audio: np.ndarray, sample_rate: int, config: MelConfig = DEFAULT_MEL
) -> np.ndarray:
    """Log-mel features at ``config.fps``, resampling first when the rate is not divisible."""
    rate = feature_rate(sample_rate, config.fps)
    return log_mel(resample_audio(audio, sample_rate, rate), rate, config)
