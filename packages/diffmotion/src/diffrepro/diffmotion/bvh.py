"""A small BVH (Biovision hierarchy) reader and writer.

``read_bvh`` parses the HIERARCHY (ROOT / JOINT / End Site, OFFSET, CHANNELS) and the MOTION
block into a :class:`Motion`; ``write_bvh`` writes one back in a fixed format, so that
write -> read -> write reproduces the file byte for byte. Malformed files raise a
``ValueError`` naming the file and line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffrepro.core.checkpoints import atomic_write

MIN_FRAME_TIME = 1e-4  # seconds: 10 kHz
MAX_FRAME_TIME = 60.0
VALID_CHANNELS = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")


@dataclass(frozen=True)
class Joint:
    """One joint: its parent's index (-1 for the root), rest offset and channel names."""

    name: str
    parent: int
    offset: tuple[float, float, float]
    channels: tuple[str, ...]
    end_site: tuple[float, float, float] | None = None

    @property
    def rotation_order(self) -> str:
        """Axes of the rotation channels in file order, e.g. ``"ZXY"``."""
        return "".join(c[0] for c in self.channels if c.endswith("rotation"))

    @property
    def has_position(self) -> bool:
        return any(c.endswith("position") for c in self.channels)


@dataclass(frozen=True)
class Skeleton:
    """A joint hierarchy; joints are listed depth first, parents before children."""

    joints: tuple[Joint, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"the skeleton has no joint named {name!r}") from None

    def channel_slice(self, name: str) -> slice:
        """Columns of the motion matrix holding this joint's channels."""
        start = 0
        for joint in self.joints:
            if joint.name == name:
                return slice(start, start + len(joint.channels))
            start += len(joint.channels)
        raise ValueError(f"the skeleton has no joint named {name!r}")

    @property
    def num_channels(self) -> int:
        return sum(len(j.channels) for j in self.joints)

    def children(self, index: int) -> list[int]:
        return [k for k, j in enumerate(self.joints) if j.parent == index]


@dataclass(frozen=True)
class Motion:
    """A skeleton plus per-frame channel values ``(frames, channels)`` (degrees / offsets units)."""

    skeleton: Skeleton
    frame_time: float
    values: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != self.skeleton.num_channels:
            raise ValueError(
                f"motion values have shape {self.values.shape}, expected (frames, "
                f"{self.skeleton.num_channels})"
            )
        if self.frame_time <= 0:
            raise ValueError(f"frame time must be positive, got {self.frame_time}")

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return self.values.shape[0]


class _Lines:
    """Token cursor over a BVH text that remembers line numbers for error messages."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.rows = [(n + 1, line.split()) for n, line in enumerate(text.splitlines())]
        self.rows = [(n, tokens) for n, tokens in self.rows if tokens]
        self.pos = 0

    def error(self, message: str, line: int | None = None) -> ValueError:
        if line is None:
            line = self.rows[min(self.pos, len(self.rows) - 1)][0] if self.rows else 1
        return ValueError(f"{self.source}, line {line}: {message}")

    def next(self, what: str) -> tuple[int, list[str]]:
        if self.pos >= len(self.rows):
            raise self.error(f"unexpected end of file, expected {what}")
        row = self.rows[self.pos]
        self.pos += 1
        return row

    def expect(self, keyword: str) -> tuple[int, list[str]]:
        line, tokens = self.next(keyword)
        if tokens[0] != keyword:
            raise self.error(f"expected {keyword!r}, found {' '.join(tokens)!r}", line)
        return line, tokens

    def floats(self, tokens: list[str], line: int, count: int, what: str) -> tuple[float, ...]:
        if len(tokens) != count:
            raise self.error(f"{what} needs {count} numbers, found {len(tokens)}", line)
        try:
            values = tuple(float(t) for t in tokens)
        except ValueError:
            raise self.error(f"{what} has a value that is not a number: {tokens}", line) from None
        if not all(math.isfinite(v) for v in values):
            raise self.error(f"{what} has a non-finite value (NaN or infinity)", line)
        return values


def _parse_joint(lines: _Lines, name: str, parent: int, joints: list[Joint]) -> None:
    lines.expect("{")
    line, tokens = lines.expect("OFFSET")
    offset = lines.floats(tokens[1:], line, 3, "OFFSET")
    line, tokens = lines.expect("CHANNELS")
    try:
        count = int(tokens[1])
    except (IndexError, ValueError):
        raise lines.error("CHANNELS must be followed by a channel count", line) from None
    channels = tuple(tokens[2:])
    if len(channels) != count:
        raise lines.error(f"CHANNELS declares {count} channels but lists {len(channels)}", line)
    for channel in channels:
        if channel not in VALID_CHANNELS:
            raise lines.error(f"unknown channel {channel!r}", line)
    rotations = [c for c in channels if c.endswith("rotation")]
    if len(rotations) not in (0, 3) or len({c[0] for c in rotations}) != len(rotations):
        raise lines.error("a joint needs three distinct rotation channels (or none)", line)
    index = len(joints)
    joints.append(Joint(name, parent, offset, channels))
    while True:
        line, tokens = lines.next("JOINT, End Site or '}'")
        if tokens[0] == "}":
            return
        if tokens[0] == "JOINT" and len(tokens) == 2:
            _parse_joint(lines, tokens[1], index, joints)
        elif tokens[:2] == ["End", "Site"]:
            lines.expect("{")
            end_line, end_tokens = lines.expect("OFFSET")
            end = lines.floats(end_tokens[1:], end_line, 3, "End Site OFFSET")
            lines.expect("}")
            joint = joints[index]
            joints[index] = Joint(joint.name, joint.parent, joint.offset, joint.channels, end)
        else:
            raise lines.error(f"expected JOINT, End Site or '}}', found {' '.join(tokens)!r}", line)


def _parse_header_value(lines: _Lines, key: list[str], kind: type) -> float | int:
    line, tokens = lines.next(" ".join(key))
    if tokens[: len(key)] != key or len(tokens) != len(key) + 1:
        raise lines.error(f"expected '{' '.join(key)} <value>', found {' '.join(tokens)!r}", line)
    try:
        return kind(tokens[-1])
    except ValueError:
        raise lines.error(f"{' '.join(key)} value {tokens[-1]!r} is not valid", line) from None


def parse_bvh(text: str, source: str = "<bvh>") -> Motion:
    """Parse BVH text. Extra data rows beyond the declared frame count are kept (some files
    declare one frame too few); missing rows are an error."""
    lines = _Lines(text, source)
    lines.expect("HIERARCHY")
    line, tokens = lines.expect("ROOT")
    if len(tokens) != 2:
        raise lines.error("ROOT needs exactly one name", line)
    joints: list[Joint] = []
    _parse_joint(lines, tokens[1], -1, joints)
    skeleton = Skeleton(tuple(joints))
    lines.expect("MOTION")
    frames_line = lines.rows[lines.pos][0] if lines.pos < len(lines.rows) else None
    frames = int(_parse_header_value(lines, ["Frames:"], int))
    if frames < 0:
        raise lines.error(f"Frames must be >= 0, got {frames}", frames_line)
    frame_time = float(_parse_header_value(lines, ["Frame", "Time:"], float))
    if not (MIN_FRAME_TIME <= frame_time <= MAX_FRAME_TIME):  # also rejects NaN
        raise lines.error(
            f"Frame Time must be a finite number of seconds in [{MIN_FRAME_TIME}, "
            f"{MAX_FRAME_TIME}] (at most 10 kHz, at least one frame a minute), got {frame_time}"
        )
    rows = [lines.floats(t, n, skeleton.num_channels, "frame") for n, t in lines.rows[lines.pos :]]
    if len(rows) < frames:
        raise lines.error(
            f"Frames declares {frames} frames but only {len(rows)} follow", frames_line
        )
    values = np.array(rows, dtype=np.float64).reshape(len(rows), skeleton.num_channels)
    return Motion(skeleton, frame_time, values)


def read_bvh(path: str | Path) -> Motion:
    """Read a BVH file (see :func:`parse_bvh`)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"BVH file {path} is a folder, expected a file")
    if not path.is_file():
        raise FileNotFoundError(f"BVH file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a BVH file (not UTF-8 text; binary?)") from None
    return parse_bvh(text, str(path))


def _format(values: tuple[float, ...] | np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in values)


def format_bvh(motion: Motion) -> str:
    """BVH text of a motion (tabs for indentation, six decimals)."""
    out = ["HIERARCHY"]
    skeleton = motion.skeleton

    def emit(index: int, depth: int) -> None:
        joint = skeleton.joints[index]
        pad = "\t" * depth
        out.append(f"{pad}{'ROOT' if joint.parent < 0 else 'JOINT'} {joint.name}")
        out.append(pad + "{")
        out.append(f"{pad}\tOFFSET {_format(joint.offset)}")
        out.append(f"{pad}\tCHANNELS {len(joint.channels)} {' '.join(joint.channels)}".rstrip())
        for child in skeleton.children(index):
            emit(child, depth + 1)
        if joint.end_site is not None:
            out.extend(
                [
                    f"{pad}\tEnd Site",
                    f"{pad}\t{{",
                    f"{pad}\t\tOFFSET {_format(joint.end_site)}",
                    f"{pad}\t}}",
                ]
            )
        out.append(pad + "}")

    emit(0, 0)
    out += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {motion.frame_time:.8f}"]
    out += [_format(row) for row in motion.values]
    return "\n".join(out) + "\n"


def write_bvh(motion: Motion, path: str | Path) -> Path:
    """Write a motion as a BVH file (atomically: a temporary file, then a rename)."""
    path = Path(path)
    text = format_bvh(motion)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def resample(motion: Motion, fps: float) -> Motion:
    """Change the frame rate by picking the nearest source frame for each output time.

    For an integer ratio (60 -> 20 fps) this is frame decimation, as pymo's DownSampler does.
    """
    if fps <= 0:
        raise ValueError(f"target fps must be positive, got {fps}")
    duration = motion.num_frames * motion.frame_time
    count = max(1, int(round(duration * fps)))
    times = np.arange(count) / fps
    source = np.clip(
        np.round(times / motion.frame_time + 1e-9).astype(int), 0, motion.num_frames - 1
    )
    return Motion(motion.skeleton, 1.0 / fps, motion.values[source])
