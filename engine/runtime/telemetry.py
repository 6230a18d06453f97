"""What the corrector reports about each frame: per face what it saw and did, per stage how long it took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.runtime.settings import Mode

# The stages of one frame, in data-flow order (the keys of Telemetry.timings_ms).
STAGES = ("face", "pose", "strip", "net", "paste")


class FaceTelemetry(BaseModel):
    """One face in one frame.

    ``box`` is the landmarks' bounding box (x0, y0, x1, y1) in frame pixels; ``eye_boxes`` the regions the
    paste-back may change (empty when the eyes were left alone). ``openness`` is the eye aspect ratio of the
    image-left and image-right eye. ``gaze_deg`` is the network's estimate of the input gaze and ``head_deg``
    the head pose from the landmarks, both (pitch, yaw) in the normalised frame, where (0, 0) faces the camera;
    ``target_deg`` is the target used in this frame (with any natural look-away offset). ``strength`` is what
    was applied after the gates; ``gates`` says why it is lower than the setting (1 = open, 0 = closed).
    """

    model_config = ConfigDict(extra="forbid")

    track_id: int
    box: tuple[float, float, float, float]
    eye_boxes: list[tuple[int, int, int, int]] = Field(default_factory=list)
    openness: tuple[float, float]
    gaze_deg: tuple[float, float] | None
    head_deg: tuple[float, float]
    target_deg: tuple[float, float]
    strength: float
    gates: dict[str, float]


class Telemetry(BaseModel):
    """One frame: its faces and the wall time of each stage in milliseconds (all faces together).

    ``total_ms`` is the time the corrector spent on the frame: with :meth:`Corrector.process` the wall time of
    the call; with :meth:`Corrector.prepare` and :meth:`Corrector.finish` the two calls plus the network, but not
    the time the frame waited for a batch between them.
    """

    model_config = ConfigDict(extra="forbid")

    frame_index: int
    mode: Mode
    backend: str
    faces: list[FaceTelemetry] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    total_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (tuples become lists, the mode its string)."""
        return self.model_dump(mode="json")


class StageTimer:
    """Accumulates the wall time of named stages (a stage entered twice adds up)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._start = time.perf_counter()

    def add(self, name: str, ms: float) -> None:
        """Add ``ms`` milliseconds measured elsewhere to stage ``name``."""
        self.ms[name] = self.ms.get(name, 0.0) + ms

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a ``with`` block as stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0

    def total_ms(self) -> float:
        """Milliseconds since the timer was created."""
        return (time.perf_counter() - self._start) * 1000.0
