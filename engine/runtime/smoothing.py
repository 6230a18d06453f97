"""Smoothing over time: the One-Euro filter for noisy measurements and a linear ramp for the strength.

Landmarks jitter by a pixel or so from frame to frame even on a still face; fed straight into the strip cut that
jitter would make the corrected eyes shimmer. The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a
low-pass filter whose cut-off rises with speed: heavy smoothing while the head is still, little lag when it
moves.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

Float64Array = NDArray[np.float64]


def _alpha(dt: float, cutoff: Float64Array | float) -> Float64Array:
    """Smoothing factor of a first-order low-pass filter with ``cutoff`` Hz sampled every ``dt`` seconds."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    out: Float64Array = 1.0 / (1.0 + tau / dt)
    return out


class OneEuroFilter:
    """One-Euro filter of an array of any fixed shape, each element on its own.

    ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` how fast the cut-off rises with speed (per unit of
    the value per second, after dividing by ``scale`` if given), ``d_cutoff`` (Hz) the smoothing of the speed
    estimate. A constant input is a fixed point: once the output has converged it stays exactly there.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._value: Float64Array | None = None
        self._speed: Float64Array | None = None
        self._time = 0.0

    def reset(self) -> None:
        """Forget the history: the next value passes through unfiltered."""
        self._value = None
        self._speed = None

    def __call__(self, value: NDArray[np.floating[Any]], time_s: float, scale: float = 1.0) -> Float64Array:
        """Filter ``value`` observed at ``time_s`` seconds; ``scale`` divides the speed (e.g. the face size)."""
        x = np.asarray(value, dtype=np.float64)
        if self._value is None or self._speed is None:
            self._value, self._speed, self._time = x.copy(), np.zeros_like(x), time_s
            return x.copy()
        if x.shape != self._value.shape:
            raise ValueError(f"value shape changed from {self._value.shape} to {x.shape}; call reset() first")
        dt = time_s - self._time
        if dt <= 0.0:
            # A repeated or out-of-order timestamp carries no speed information: keep the last output.
            return self._value.copy()
        a_d = _alpha(dt, self.d_cutoff)
        speed = a_d * (x - self._value) / dt + (1.0 - a_d) * self._speed
        cutoff = self.min_cutoff + self.beta * np.abs(speed) / max(scale, 1e-9)
        a = _alpha(dt, cutoff)
        # prev + a (x - prev) rather than a x + (1 - a) prev: exact when x equals prev, so a still input gives a
        # bit-identical output.
        self._value = self._value + a * (x - self._value)
        self._speed = speed
        self._time = time_s
        return self._value.copy()


class Ramp:
    """A value in [0, 1] that moves toward its target by at most ``1 / frames`` per step (no jumps)."""

    def __init__(self, value: float = 0.0) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"ramp value must be in [0, 1], got {value}")
        self.value = value

    def step(self, target: float, frames: int) -> float:
        """Move toward ``target`` (clipped to [0, 1]) taking ``frames`` steps for a full 0 -> 1 swing."""
        if frames < 1:
            raise ValueError(f"frames must be positive, got {frames}")
        goal = min(max(target, 0.0), 1.0)
        delta = min(max(goal - self.value, -1.0 / frames), 1.0 / frames)
        self.value = min(max(self.value + delta, 0.0), 1.0)
        return self.value

    def set(self, value: float) -> None:
        """Jump to ``value`` (for a blink, which must stop the correction at once, or a single image)."""
        self.value = min(max(value, 0.0), 1.0)
