"""The synthetic truth's known speech-motion coupling: the *drive* of an utterance.

``drive = clip((E - E_silence) / (E_loud - E_silence), 0, 1)`` smoothed by a centred moving
average of ``DRIVE_SMOOTH`` seconds, where ``E`` is the log summed mel power of each 20 fps
speech frame (:func:`diffrepro.diffmotion.metrics.speech_energy`) and the two levels are the
prosody generator's silence and loud speech. It is a function of the very log-mel features the
model reads (and lies inside its 5-past / 20-ahead speech window), so a model that learns the
speech-motion mapping can recover it. The synthetic gestures raise the arms in proportion to it
(:func:`diffrepro.diffmotion.gestures.gesture_motion`); the demo's headline is the correlation
of the generated wrist height with it.
"""

from __future__ import annotations

import numpy as np

from .metrics import speech_energy

ENERGY_SILENCE = -3.0  # log summed mel power: the prosody generator's pauses lie at about -3.7
ENERGY_LOUD = 7.5  # its loudest syllables
DRIVE_SMOOTH = 0.4  # seconds


def speech_drive(speech: np.ndarray, fps: float) -> np.ndarray:
    """The drive in [0, 1] of log-mel features ``(frames, bands)``, one value per frame."""
    energy = speech_energy(speech)
    level = np.clip((energy - ENERGY_SILENCE) / (ENERGY_LOUD - ENERGY_SILENCE), 0.0, 1.0)
    width = max(1, int(round(DRIVE_SMOOTH * fps)))
    padded = np.pad(level, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def upsample(signal: np.ndarray, fps: float, new_fps: float, frames: int) -> np.ndarray:
    """Linear interpolation of a ``fps`` signal at ``frames`` frames of ``new_fps``."""
    return np.interp(np.arange(frames) / new_fps, np.arange(len(signal)) / fps, signal)
