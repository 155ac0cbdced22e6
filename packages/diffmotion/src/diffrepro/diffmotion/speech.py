"""Offline speech for the embedded data set.

``synthesize(index, rng, source)`` makes utterance ``index``:

- ``source="prosody"`` (the default of the demo and of ``diffmotion train`` without ``--data``):
  :func:`prosody_signal`, a fixed-seed numpy generator, so the data set is bit-reproducible for
  a seed: phrases of syllables at 3-6 Hz with stress, a harmonic voice source (100-220 Hz
  fundamental with declination and pitch accents, a vowel-like spectral tilt), noise bursts for
  fricatives and pauses between phrases. Speech-like in energy and rhythm, not intelligible.
- ``source="espeak"``: espeak-ng through the ``espeakng-loader`` wheel (the optional
  ``diffrepro-diffmotion[demo]`` extra: a self-contained libespeak-ng, no network). libespeak-ng
  does not return identical audio for identical calls, so each (text, voice, rate, pitch,
  library version) is synthesised once and cached as a WAV named by the hash of those settings
  (:func:`espeak_cache_dir`); later runs read the cached WAV. Runs are reproducible once the
  cache holds the utterances, not from an empty cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SOURCES = ("prosody", "espeak")
SENTENCES = (
    "So the thing is, we went there on a Tuesday, and nobody was around at all.",
    "I mean, it was really quite big, much bigger than I had ever expected.",
    "Well, you know, my brother used to say that every single summer.",
    "And then, all of a sudden, the whole thing just fell apart.",
    "Honestly, I think it depends on what you are trying to do with it.",
    "We had to walk for hours, and it was raining the entire time.",
    "Right, so first you take the left one, and then you turn it over.",
    "There were maybe twenty people, or thirty, I really cannot remember.",
    "It is not that I did not like it, it was just a bit too loud for me.",
    "Anyway, that is more or less how we ended up living in Dublin.",
    "She told me, look, if you do not try, you will never find out.",
    "The funny part is that nobody noticed until the very next morning.",
)  # fmt: skip


def espeak_available() -> bool:
    """Whether the optional ``espeakng-loader`` wheel is installed."""
    return importlib.util.find_spec("espeakng_loader") is not None


def espeak_synthesize(
    text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50
) -> tuple[np.ndarray, int]:
    """Speech from libespeak-ng (shipped by ``espeakng-loader``) through ctypes: (audio, rate)."""
    import espeakng_loader

    lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
    data_dir = Path(espeakng_loader.get_data_path())
    rate_hz = lib.espeak_Initialize(2, 0, str(data_dir.parent).encode(), 0)  # 2 = synchronous
    if rate_hz <= 0:
        raise OSError("libespeak-ng failed to initialise")
    chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def collect(wav, count, _events):  # noqa: ANN001 - a C callback
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    keep = callback_type(collect)
    lib.espeak_SetSynthCallback(keep)
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(1, int(rate), 0)  # espeakRATE, words per minute
    lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH, 0-100
    encoded = text.encode() + b"\0"
    lib.espeak_Synth(encoded, len(encoded), 0, 0, 0, 1, None, None)  # 1 = UTF-8
    lib.espeak_Synchronize()
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return audio.astype(np.float32) / 32768.0, int(rate_hz)


def prosody_signal(
    duration: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A speech-like stand-in of ``duration`` seconds (see the module docstring)."""
    n = int(duration * sample_rate)
    envelope = np.zeros(n)
    f0_accent = np.zeros(n)
    hiss = np.zeros(n)
    t = 0.2 + rng.uniform(0, 0.2)
    while t < duration - 0.5:
        phrase_end = min(duration - 0.3, t + rng.uniform(0.8, 2.2))
        syllable_rate = rng.uniform(3.0, 6.0)
        while t < phrase_end:
            length = rng.uniform(0.6, 1.4) / syllable_rate
            start, stop = int(t * sample_rate), min(n, int((t + length) * sample_rate))
            stress = rng.choice([0.35, 0.6, 1.0], p=[0.3, 0.4, 0.3])
            window = np.sin(np.linspace(0, np.pi, stop - start)) ** 1.5
            envelope[start:stop] = np.maximum(envelope[start:stop], stress * window)
            f0_accent[start:stop] += 25.0 * stress * window
            if rng.random() < 0.3:  # a fricative onset
                burst = min(stop, start + int(0.06 * sample_rate))
                hiss[start:burst] += 0.3 * stress
            t += length
        t += rng.uniform(0.25, 0.8)  # pause
    time = np.arange(n) / sample_rate
    f0 = rng.uniform(100.0, 220.0) * (1.0 - 0.15 * time / duration) + f0_accent
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tilt = rng.uniform(0.8, 1.6)
    voice = sum(np.sin(k * phase) / k**tilt for k in range(1, 25) if k * f0.max() < sample_rate / 2)
    noise = rng.standard_normal(n)
    audio = envelope * voice / 3.0 + hiss * noise * 0.2 + 0.002 * noise
    return (audio / max(1e-6, np.abs(audio).max()) * 0.8).astype(np.float32)


def espeak_cache_dir() -> Path:
    """Where synthesised espeak-ng utterances are kept (``XDG_CACHE_HOME`` honoured)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "diffrepro" / "diffmotion" / "espeak"


def cached_espeak(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """:func:`espeak_synthesize`, once per settings: the WAV is cached under their hash."""
    from .audio import read_wav, write_wav

    version = importlib.metadata.version("espeakng-loader")
    key = json.dumps([text, voice, int(rate), int(pitch), version])
    path = espeak_cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.wav"
    if path.is_file():
        return read_wav(path)
    audio, sample_rate = espeak_synthesize(text, voice, rate, pitch)
    temporary = path.with_suffix(f".tmp{os.getpid()}.wav")
    write_wav(temporary, audio, sample_rate)
    os.replace(temporary, path)  # atomic: a concurrent or killed run never sees half a file
    return read_wav(path)  # the 16-bit audio every later run reads


def synthesize(
    index: int, rng: np.random.Generator, source: str = "prosody"
) -> tuple[np.ndarray, int]:
    """Utterance ``index``: the prosody stand-in (``source="prosody"``), or espeak-ng speech of
    a sentence (varied voice, rate and pitch, silence around it). Returns (audio, rate)."""
    if source not in SOURCES:
        raise ValueError(f"unknown speech source {source!r}; expected one of {', '.join(SOURCES)}")
    if source == "prosody":
        return prosody_signal(rng.uniform(4.0, 7.0), rng), SAMPLE_RATE
    if not espeak_available():
        raise ValueError(
            "speech source 'espeak' needs the espeakng-loader wheel "
            "(pip install 'diffrepro-diffmotion[demo]')"
        )
    voice = str(rng.choice(["en-us", "en-us+f2", "en-us+m3", "en-gb", "en-us+f4"]))
    text = SENTENCES[index % len(SENTENCES)]
    audio, rate = cached_espeak(text, voice, int(rng.integers(130, 190)), int(rng.integers(30, 70)))
    gap = np.zeros(int(rng.uniform(0.2, 0.5) * rate), np.float32)
    return np.concatenate([gap, audio, gap]), rate
