"""Procedural gestures that follow speech, on the in-code skeleton, at 60 fps.

Deterministic part, from the speech *drive* (:mod:`diffrepro.diffmotion.coupling`, a known
function of the log-mel features): the arms rise into the gesture space in proportion to it
(shoulder abduction ``8 + 20 drive``, flexion ``30 drive``, elbow ``12 + 40 drive`` degrees) and
relax to rest in pauses. Stochastic part: the hands gesticulate at a random rate (1.5-3 Hz) and
phase with an amplitude of ``8 drive`` degrees; at energy onsets of the audio, with probability
``beat_probability``, a beat stroke (right hand, left hand, both hands opening, or a head nod)
fires with an amplitude set by the loudness there, random handedness and +-50 ms jitter; a slow
Ornstein-Uhlenbeck sway moves spine, neck and head all the time. The same audio therefore has
many valid gestures, with known couplings (arm height <-> drive, stroke timing <-> onsets,
amplitude <-> loudness).
"""

from __future__ import annotations

import numpy as np

from .bvh import Motion
from .skeleton import upper_body_skeleton

MOTION_FPS = 60
STROKES = ("right", "left", "both", "nod")


def loudness(audio: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS of the audio in ``frames`` windows centred on the frame times, scaled to [0, 1]."""
    centres = (np.arange(frames) / fps * sample_rate).astype(int)
    half = int(sample_rate / fps)
    tail = max(half, int(centres[-1]) + 2 * half - len(audio)) if frames else half
    padded = np.pad(np.asarray(audio, np.float64) ** 2, (half, tail))
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    rms = np.sqrt((cumulative[centres + 2 * half] - cumulative[centres]) / (2 * half))
    return rms / max(rms.max(), 1e-8)


def onsets(energy: np.ndarray, fps: float, min_gap: float = 0.25) -> np.ndarray:
    """Frames where loudness rises fastest (peaks of its positive derivative)."""
    kernel = np.hanning(max(3, int(0.08 * fps)))
    smooth = np.convolve(energy, kernel / kernel.sum(), mode="same")
    rise = np.maximum(np.gradient(smooth), 0.0)
    threshold = 0.15 * rise.max() if rise.max() > 0 else np.inf
    peaks = [
        i for i in range(1, len(rise) - 1)
        if rise[i] >= threshold and rise[i] >= rise[i - 1] and rise[i] > rise[i + 1]
    ]  # fmt: skip
    kept: list[int] = []
    for i in peaks:
        if not kept or i - kept[-1] >= min_gap * fps:
            kept.append(i)
    return np.array(kept, dtype=int)


def _ou(frames: int, rng: np.random.Generator, scale: float, tau: float) -> np.ndarray:
    """Ornstein-Uhlenbeck sway (degrees) with time constant ``tau`` seconds."""
    decay = np.exp(-1.0 / (tau * MOTION_FPS))
    noise = rng.standard_normal(frames) * scale * np.sqrt(1 - decay**2)
    out = np.zeros(frames)
    value = rng.standard_normal() * scale
    for i in range(frames):
        value = decay * value + noise[i]
        out[i] = value
    return out


def gesture_motion(
    audio: np.ndarray,
    sample_rate: int,
    frames: int,
    rng: np.random.Generator,
    drive: np.ndarray,
    beat_probability: float = 0.6,
) -> Motion:
    """A 60 fps motion of ``frames`` frames following ``audio`` and its ``drive`` (one value in
    [0, 1] per 60 fps frame; see the module docstring)."""
    if drive.shape != (frames,):
        raise ValueError(f"drive has shape {drive.shape}, expected ({frames},)")
    energy = loudness(audio, sample_rate, MOTION_FPS, frames)
    time = np.arange(frames) / MOTION_FPS
    rate, phase = rng.uniform(1.5, 3.0), rng.uniform(0, 2 * np.pi, 2)
    gesticulation = [8.0 * drive * np.sin(2 * np.pi * rate * time + p) for p in phase]
    strokes = {name: np.zeros(frames) for name in STROKES}
    for onset in onsets(energy, MOTION_FPS):
        if rng.random() > beat_probability:
            continue
        kind = STROKES[rng.choice(4, p=[0.35, 0.25, 0.25, 0.15])]
        centre = (onset + rng.integers(-3, 4)) / MOTION_FPS + 0.05
        amplitude = (0.4 + 0.6 * energy[onset : onset + 6].max()) * rng.uniform(0.7, 1.3)
        strokes[kind] += amplitude * np.exp(-0.5 * ((time - centre) / 0.1) ** 2)
    right = strokes["right"] + strokes["both"]
    left = strokes["left"] + strokes["both"]
    angles = {name: np.zeros((frames, 3)) for name in upper_body_skeleton().names}  # Z, X, Y
    for k, name in enumerate(("Spine", "Spine1", "Spine2", "Spine3")):
        angles[name][:, 0] = _ou(frames, rng, 1.2 / (k + 1), 1.5)
        angles[name][:, 1] = _ou(frames, rng, 0.8 / (k + 1), 2.0) - 1.5 * drive
    angles["Neck"][:, 2] = _ou(frames, rng, 3.0, 1.2)
    angles["Head"][:, 1] = _ou(frames, rng, 2.0, 1.0) + 10.0 * strokes["nod"]
    angles["Head"][:, 2] = _ou(frames, rng, 3.0, 1.5)
    for side, beat, sign, wave in (
        ("Right", right, -1.0, gesticulation[0]),
        ("Left", left, 1.0, gesticulation[1]),
    ):
        angles[f"{side}Shoulder"][:, 0] = sign * 3.0 * beat
        angles[f"{side}Arm"][:, 0] = sign * (8.0 + 20.0 * drive + 14.0 * strokes["both"])
        angles[f"{side}Arm"][:, 1] = -30.0 * drive - 12.0 * beat
        angles[f"{side}ForeArm"][:, 1] = -(12.0 + 40.0 * drive) - 30.0 * beat + wave
        angles[f"{side}ForeArm"][:, 2] = sign * -10.0 * drive
        angles[f"{side}Hand"][:, 1] = -10.0 * beat
    skeleton = upper_body_skeleton()
    values = np.concatenate(
        [np.zeros((frames, 3)), *(angles[j.name] for j in skeleton.joints)], axis=1
    )
    return Motion(skeleton, 1.0 / MOTION_FPS, values)
