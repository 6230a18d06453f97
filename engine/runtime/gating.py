"""When not to correct: closed eyes, a gaze far from the target, a head turned away; and natural look-aways.

Each gate is a number in [0, 1] that multiplies the strength: 1 lets the correction through, 0 stops it. The
look-away gates fade linearly between two angles so the correction never switches on or off in one frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.runtime.face import EYE_CONTOURS

Float64Array = NDArray[np.float64]

# Length of a natural glance away, in frames, and of its ease in and out (half a cosine).
_GLANCE_FRAMES = (20, 60)
_GLANCE_EASE_FRAMES = 8


def eye_aspect_ratio(points: Float64Array) -> float:
    """Eye aspect ratio of six eye points ``[6, 2]`` (corner, upper, upper, corner, lower, lower).

    The mean lid-to-lid distance over the eye's width: about 0.25-0.35 for an open eye in MediaPipe's mesh,
    near 0.05 for a closed one, and independent of the face's size.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (6, 2):
        raise ValueError(f"need six eye points (6 x 2), got {p.shape}")
    width = float(np.linalg.norm(p[0] - p[3]))
    if width <= 0.0:
        return 0.0
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2.0 * width))


def eye_openness(landmarks: Float64Array) -> tuple[float, float]:
    """Eye aspect ratio of the image-left and the image-right eye from a face's landmarks ``[478, 2]``."""
    left, right = (eye_aspect_ratio(landmarks[list(idx)]) for idx in EYE_CONTOURS)
    return left, right


def linear_fade(value: float, start: float, end: float) -> float:
    """1 up to ``start``, 0 from ``end`` on, linear in between."""
    if end <= start:
        raise ValueError(f"end ({end}) must exceed start ({start})")
    return min(max((end - value) / (end - start), 0.0), 1.0)


def angle_between_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Angle in degrees between two (pitch, yaw) directions given in degrees."""

    def vec(p: tuple[float, float]) -> Float64Array:
        pitch, yaw = math.radians(p[0]), math.radians(p[1])
        return np.array([-math.cos(pitch) * math.sin(yaw), -math.sin(pitch), -math.cos(pitch) * math.cos(yaw)])

    return math.degrees(math.acos(float(np.clip(vec(a) @ vec(b), -1.0, 1.0))))


@dataclass(frozen=True)
class Gates:
    """The gates of one face in one frame (1 = correct fully, 0 = leave alone)."""

    blink: float
    look_away: float
    head: float

    @property
    def fade(self) -> float:
        """The gates that fade smoothly (look-away and head), combined."""
        return min(self.look_away, self.head)

    def as_dict(self) -> dict[str, float]:
        """For telemetry."""
        return {"blink": self.blink, "look_away": self.look_away, "head": self.head}


class NaturalLookAway:
    """Seeded random glances: every ``interval`` frames (drawn uniformly from the range) the target moves by up
    to ``max_deg`` in a random direction for a short glance, easing out and back in.

    :meth:`step` is called once per frame and returns the (pitch, yaw) offset in degrees for that frame.
    """

    def __init__(self, max_deg: float, interval: tuple[int, int], seed: int) -> None:
        low, high = interval
        if max_deg < 0 or not 1 <= low <= high:
            raise ValueError(f"need max_deg >= 0 and 1 <= low <= high, got {max_deg}, {interval}")
        self.max_deg = max_deg
        self.interval = interval
        self._rng = np.random.default_rng(seed)
        self._wait = self._draw_wait()
        self._glance: tuple[float, float] = (0.0, 0.0)
        self._glance_length = 0
        self._glance_frame = 0

    def _draw_wait(self) -> int:
        return int(self._rng.integers(self.interval[0], self.interval[1] + 1))

    def step(self) -> tuple[float, float]:
        """Advance one frame; the target offset (pitch, yaw) in degrees."""
        if self._glance_length == 0:
            self._wait -= 1
            if self._wait > 0:
                return 0.0, 0.0
            angle = float(self._rng.uniform(0.0, 2.0 * math.pi))
            # At least half the maximum, so a glance is visible at all.
            radius = float(self._rng.uniform(0.5, 1.0)) * self.max_deg
            self._glance = (radius * math.sin(angle), radius * math.cos(angle))
            self._glance_length = int(self._rng.integers(_GLANCE_FRAMES[0], _GLANCE_FRAMES[1] + 1))
            self._glance_frame = 0
        self._glance_frame += 1
        t = self._glance_frame
        ease = min(_GLANCE_EASE_FRAMES, self._glance_length // 2)
        # Raised-cosine ease at both ends: the eyes move smoothly rather than jumping to the offset.
        if t <= ease:
            weight = 0.5 - 0.5 * math.cos(math.pi * t / ease)
        elif t > self._glance_length - ease:
            weight = 0.5 - 0.5 * math.cos(math.pi * (self._glance_length - t) / ease)
        else:
            weight = 1.0
        offset = (weight * self._glance[0], weight * self._glance[1])
        if t >= self._glance_length:
            self._glance_length = 0
            self._wait = self._draw_wait()
        return offset
