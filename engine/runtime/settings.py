"""What a user can change about the correction while a stream runs (shared with the service's API).

Angles are in degrees here (what people type and read); the corrector converts them to radians for the
network. Every field is validated, so a bad value fails where it is set, with pydantic's ``ValidationError``,
instead of somewhere in the middle of a frame.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Mode(StrEnum):
    """What :meth:`engine.runtime.corrector.Corrector.process` does with a frame."""

    CORRECT = "correct"  # redirect the gaze (the default)
    ESTIMATE = "estimate"  # find faces and estimate gaze and head pose for telemetry; the frame is untouched
    OFF = "off"  # pass the frame through without looking at it


class Settings(BaseModel):
    """Per-stream correction settings.

    ``target_pitch_deg``/``target_yaw_deg`` are the gaze target in the normalised strip frame (the convention
    of :mod:`engine.strip`): (0, 0) looks into the camera, positive pitch is up, positive yaw toward the image
    left. ``strength`` scales the redirection (0 keeps the gaze, 1 moves it all the way to the target).

    Look-away fallback: when the estimated gaze is more than ``look_away_start_deg`` from the target the
    correction fades out linearly, reaching zero at ``look_away_end_deg`` (someone reading a note should not
    have their eyes dragged back to the camera); the same for the head turned away from the camera by
    ``head_start_deg`` to ``head_end_deg`` (the network was trained on heads within about 25 degrees).
    Eyes whose openness (eye aspect ratio) is below ``blink_threshold`` are left untouched.

    Natural look-away adds small random target offsets (at most ``natural_look_away_max_deg``, held for a
    short glance) at random intervals of ``natural_look_away_interval`` frames, seeded by
    ``natural_look_away_seed``, because a gaze fixed on the camera for minutes reads as a stare.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    mode: Mode = Mode.CORRECT
    target_pitch_deg: float = Field(default=0.0, ge=-30.0, le=30.0)
    target_yaw_deg: float = Field(default=0.0, ge=-30.0, le=30.0)
    strength: float = Field(default=1.0, ge=0.0, le=1.0)
    look_away_start_deg: float = Field(default=20.0, gt=0.0, le=90.0)
    look_away_end_deg: float = Field(default=30.0, gt=0.0, le=90.0)
    head_start_deg: float = Field(default=20.0, gt=0.0, le=90.0)
    head_end_deg: float = Field(default=30.0, gt=0.0, le=90.0)
    blink_threshold: float = Field(default=0.15, ge=0.0, le=1.0)
    natural_look_away: bool = False
    natural_look_away_max_deg: float = Field(default=5.0, ge=0.0, le=5.0)
    natural_look_away_interval: tuple[int, int] = (100, 350)
    natural_look_away_seed: int = Field(default=0, ge=0)
    max_faces: int = Field(default=1, ge=1, le=32)
    ramp_frames: int = Field(default=8, ge=1, le=300)
    focal_scale: float = Field(default=1.0, gt=0.1, le=10.0)
    # How much of the network's colour residual is pasted on top of its warp. The warp moves the frame's own
    # full-resolution pixels (sharp, true colours); the residual is drawn at strip resolution by a network that
    # has only seen synthetic eyes, and on real photos it tints brown irises violet and softens them
    # (docs/runtime_residual.png). So real frames get the warp alone unless a user asks for more.
    residual_gain: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_ranges(self) -> Self:
        if self.look_away_end_deg <= self.look_away_start_deg:
            raise ValueError(
                f"look_away_end_deg ({self.look_away_end_deg}) must exceed look_away_start_deg "
                f"({self.look_away_start_deg})"
            )
        if self.head_end_deg <= self.head_start_deg:
            raise ValueError(f"head_end_deg ({self.head_end_deg}) must exceed head_start_deg ({self.head_start_deg})")
        low, high = self.natural_look_away_interval
        if not 1 <= low <= high:
            raise ValueError(f"natural_look_away_interval must be (low, high) with 1 <= low <= high, got {low, high}")
        return self

    @property
    def target_deg(self) -> tuple[float, float]:
        """The gaze target (pitch, yaw) in degrees."""
        return self.target_pitch_deg, self.target_yaw_deg
