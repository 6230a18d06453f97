"""Per-face state across frames: matching faces between frames and the filters that belong to each face."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.runtime.face import FaceLandmarks
from engine.runtime.gating import NaturalLookAway
from engine.runtime.pose import HeadPose
from engine.runtime.smoothing import OneEuroFilter, Ramp

Float64Array = NDArray[np.float64]

# One-Euro parameters. Landmark speed is measured in face sizes per second: a still face is smoothed at
# 1.5 Hz, a face moving a tenth of its size per second already at ~3 Hz, so a turning head does not lag.
LANDMARK_FILTER = {"min_cutoff": 1.5, "beta": 15.0, "d_cutoff": 1.0}
# The pose follows already smoothed landmarks; a light extra filter removes what the PnP fit adds. Speeds are
# in radians per second (rotation vector) and in distances per second (position, scaled by its distance).
POSE_FILTER = {"min_cutoff": 3.0, "beta": 1.0, "d_cutoff": 1.0}
# Gaze estimates only drive the look-away gate, which needs no speed: smooth them heavily.
GAZE_FILTER = {"min_cutoff": 0.8, "beta": 0.05, "d_cutoff": 1.0}

# A face matches a track when their centres are closer than this fraction of the face's size.
_MATCH_DISTANCE = 0.5


@dataclass
class FaceTrack:
    """Everything the corrector remembers about one face."""

    track_id: int
    centre: Float64Array
    landmarks: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(**LANDMARK_FILTER))
    rotation: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(**POSE_FILTER))
    position: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(**POSE_FILTER))
    gaze: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(**GAZE_FILTER))
    strength: Ramp = field(default_factory=Ramp)
    pose: HeadPose | None = None
    gaze_deg: tuple[float, float] | None = None
    look_away: NaturalLookAway | None = None


class FaceTracks:
    """Matches each frame's faces to the tracks of the previous frame (greedy, nearest centre first)."""

    def __init__(self) -> None:
        self.tracks: list[FaceTrack] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget every face."""
        self.tracks = []

    def update(self, faces: list[FaceLandmarks]) -> list[FaceTrack]:
        """The track of each face (in the faces' order); unmatched faces start new tracks, unmatched tracks end."""
        centres = [face.centre() for face in faces]
        pairs = sorted(
            (float(np.linalg.norm(c - t.centre)), fi, ti)
            for fi, c in enumerate(centres)
            for ti, t in enumerate(self.tracks)
            if np.linalg.norm(c - t.centre) < _MATCH_DISTANCE * faces[fi].size()
        )
        assigned: dict[int, FaceTrack] = {}
        used: set[int] = set()
        for _, fi, ti in pairs:
            if fi in assigned or ti in used:
                continue
            assigned[fi] = self.tracks[ti]
            used.add(ti)
        result = []
        for fi, centre in enumerate(centres):
            track = assigned.get(fi)
            if track is None:
                track = FaceTrack(self._next_id, centre)
                self._next_id += 1
            track.centre = centre
            result.append(track)
        self.tracks = result
        return result
