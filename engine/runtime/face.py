"""Frame -> face landmarks: MediaPipe's face mesh with iris refinement (478 points per face).

MediaPipe's indices are anatomical: "right" is the subject's right, which is on the image *left* for a
webcam image that is not mirrored. The constants below are named by image side to match
:meth:`engine.strip.EyeModel.eye_corners` (left eye outer, left eye inner, right eye inner, right eye outer, as
seen in the image).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

NUM_LANDMARKS = 478  # 468 mesh points + 2 x 5 iris points (refine_landmarks=True)

# Eye corners in EyeModel.eye_corners() order: 33 is the subject's right eye's outer (temporal) corner, on
# the image left; 133 its inner corner; 362 and 263 the subject's left eye's inner and outer corners.
EYE_CORNERS = (33, 133, 362, 263)
# Nose tip, mouth corners (subject's right = image left first, as EyeModel.face_points) and chin.
FACE_POINTS = (1, 61, 291, 152)
# Iris centres: 468 of the image-left eye (subject's right), 473 of the image-right eye.
IRIS_CENTRES = (468, 473)
# Six points per eye for the eye aspect ratio (Soukupova & Cech 2016): corner, two upper-lid points, corner,
# two lower-lid points, ordered so that p1-p4 is the width and (p2, p6), (p3, p5) are facing lid pairs.
EYE_CONTOURS = (
    (33, 160, 158, 133, 153, 144),  # image-left eye (subject's right)
    (263, 387, 385, 362, 380, 373),  # image-right eye (subject's left)
)


@dataclass(frozen=True)
class FaceLandmarks:
    """One face's landmarks: ``points`` ``[478, 2]`` (x, y) in frame pixels."""

    points: NDArray[np.float64]

    def box(self) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) of the landmarks."""
        lo, hi = self.points.min(axis=0), self.points.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def centre(self) -> NDArray[np.float64]:
        """Centre (x, y) of the bounding box (for matching faces between frames)."""
        x0, y0, x1, y1 = self.box()
        return np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])

    def size(self) -> float:
        """Diagonal of the bounding box in pixels."""
        x0, y0, x1, y1 = self.box()
        return float(np.hypot(x1 - x0, y1 - y0))

    def irises(self) -> NDArray[np.float64]:
        """The two iris centres ``[2, 2]`` (x, y), the image-left eye first."""
        return self.points[list(IRIS_CENTRES)]

    def eye_width(self) -> float:
        """The mean width of the two eyes, corner to corner, in pixels (a scale for iris moves)."""
        c = self.points[list(EYE_CORNERS)]
        return float((np.linalg.norm(c[0] - c[1]) + np.linalg.norm(c[2] - c[3])) / 2.0)


class FaceTracker:
    """MediaPipe face mesh (legacy ``solutions`` API) with iris landmarks.

    ``video=True`` runs MediaPipe in tracking mode (it re-detects only when tracking is lost, which is both
    faster and steadier); ``video=False`` treats every frame as an unrelated image. Not thread-safe: one per
    stream. Use it as a context manager or call :meth:`close` to free the graph.
    """

    def __init__(
        self,
        max_faces: int = 1,
        video: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        # Imported here: mediapipe takes a second to import and most of the engine does not need it.
        import mediapipe as mp

        self.max_faces = max_faces
        self.video = video
        self._mesh: Any = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, frame_rgb: NDArray[np.uint8]) -> list[FaceLandmarks]:
        """Landmarks of every face found in an ``H x W x 3`` uint8 RGB frame (possibly none)."""
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame must be H x W x 3 uint8 RGB, got {frame_rgb.shape} {frame_rgb.dtype}")
        if self._mesh is None:
            raise RuntimeError("FaceTracker is closed")
        height, width = frame_rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(frame_rgb))
        faces: list[FaceLandmarks] = []
        for face in result.multi_face_landmarks or []:
            xy = np.array([(p.x, p.y) for p in face.landmark], dtype=np.float64)
            if xy.shape != (NUM_LANDMARKS, 2):
                raise RuntimeError(f"expected {NUM_LANDMARKS} landmarks (refine_landmarks=True), got {xy.shape[0]}")
            xy[:, 0] *= width  # MediaPipe normalises x by the width and y by the height
            xy[:, 1] *= height
            faces.append(FaceLandmarks(xy))
        return faces

    def close(self) -> None:
        """Release MediaPipe's graph (idempotent)."""
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
