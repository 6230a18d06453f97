"""Face landmarks -> head pose: a perspective-n-point fit of the landmarks to the shared 3-D face model.

The model points are :meth:`engine.strip.EyeModel.eye_corners` and :meth:`engine.strip.EyeModel.face_points`,
the same model the synthetic renderer draws and the strip normalisation is defined on: with a different model
here the strips cut at run time would sit differently from the training strips (a constant gaze offset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from engine.runtime.face import EYE_CORNERS, FACE_POINTS
from engine.strip import DEFAULT_EYE_MODEL, EyeModel, normalising_rotation, pitch_yaw_from_rotation

Float64Array = NDArray[np.float64]

# Plausible distances of the eye midpoint from the camera (mm); a fit outside them is a failed fit.
MIN_DEPTH_MM = 80.0
MAX_DEPTH_MM = 10_000.0


def camera_matrix(width: int, height: int, focal_scale: float = 1.0) -> Float64Array:
    """Intrinsics of an uncalibrated webcam: focal length ``focal_scale`` x the frame width, centred principal point.

    A focal length of about the image width is a ~53 degree horizontal field of view, typical of webcams. An
    error here mostly scales the fitted distance, which the strip normalisation divides out again.
    """
    if width <= 0 or height <= 0 or focal_scale <= 0:
        raise ValueError(f"need a positive frame size and focal_scale, got {width} x {height}, {focal_scale}")
    f = focal_scale * width
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class HeadPose:
    """A head's pose in the camera frame (mm, OpenCV axes).

    ``rotation`` ``[3, 3]`` maps head-frame directions to camera-frame ones; ``centre`` ``[3]`` is the head-frame
    origin, the midpoint of the four eye corners, in the camera frame.
    """

    rotation: Float64Array
    centre: Float64Array

    def rotation_vector(self) -> Float64Array:
        """The rotation as a Rodrigues vector ``[3]`` (what the smoothing filters)."""
        rvec, _ = cv2.Rodrigues(self.rotation)
        return np.asarray(rvec, dtype=np.float64).reshape(3)

    @staticmethod
    def from_vectors(rotation_vector: Float64Array, centre: Float64Array) -> HeadPose:
        """The pose of a Rodrigues vector and a centre."""
        rot, _ = cv2.Rodrigues(np.asarray(rotation_vector, dtype=np.float64).reshape(3, 1))
        return HeadPose(np.asarray(rot, dtype=np.float64), np.asarray(centre, dtype=np.float64).reshape(3))

    def normalised_pitch_yaw(self) -> tuple[float, float]:
        """Head (pitch, yaw) in radians in the normalised frame, where (0, 0) faces the camera."""
        rot = torch.from_numpy(self.rotation)
        norm = normalising_rotation(torch.from_numpy(self.centre), rot)
        pitch, yaw = pitch_yaw_from_rotation(norm @ rot).tolist()
        return float(pitch), float(yaw)

    def angle_from_camera_deg(self) -> float:
        """Angle in degrees between the way the face points and the direction from the face to the camera."""
        forward = -self.rotation[:, 2]
        to_camera = -self.centre / max(float(np.linalg.norm(self.centre)), 1e-9)
        return math.degrees(math.acos(float(np.clip(forward @ to_camera, -1.0, 1.0))))


class PoseEstimator:
    """Fits :class:`HeadPose` to MediaPipe landmarks with :func:`cv2.solvePnP`.

    The eye corners count twice in the fit: the strip is centred on them, so their reprojection matters most,
    and the mouth corners and chin move with speech and expressions that the rigid model does not have.
    """

    def __init__(self, model: EyeModel = DEFAULT_EYE_MODEL, eye_weight: int = 2) -> None:
        if eye_weight < 1:
            raise ValueError(f"eye_weight must be at least 1, got {eye_weight}")
        self._indices = np.array(list(EYE_CORNERS) * eye_weight + list(FACE_POINTS))
        self._object = np.concatenate([model.eye_corners()] * eye_weight + [model.face_points()]).astype(np.float64)

    def estimate(
        self, landmarks: Float64Array, camera: Float64Array, previous: HeadPose | None = None
    ) -> HeadPose | None:
        """The head pose of one face's landmarks ``[478, 2]`` (pixels), or None if the fit fails.

        With ``previous`` (the last frame's pose) the fit starts from it and refines iteratively, which keeps it
        on the same solution from frame to frame; without, it uses the globally optimal SQPnP solver.
        """
        image = np.ascontiguousarray(landmarks[self._indices], dtype=np.float64)
        dist = np.zeros(4)
        if previous is not None:
            ok, rvec, tvec = cv2.solvePnP(
                self._object,
                image,
                camera,
                dist,
                rvec=previous.rotation_vector().reshape(3, 1).copy(),
                tvec=previous.centre.reshape(3, 1).copy(),
                useExtrinsicGuess=True,
                flags=cv2.SOLVEPNP_ITERATIVE,
            )
        else:
            return self._first_fit(image, camera, dist)
        if not ok:
            return None
        return _checked(np.asarray(rvec, np.float64), np.asarray(tvec, np.float64))

    def _first_fit(self, image: Float64Array, camera: Float64Array, dist: Float64Array) -> HeadPose | None:
        """The fit of a face seen for the first time: SQPnP's global optimum or a fit started facing the camera.

        A face model this flat, seen from 60 cm, has two nearly equally good fits mirrored in pitch (scikit-image's
        astronaut came out at +22° or -22° depending on a few millimetres of the model). Of the fits whose
        reprojection error is within ``_AMBIGUOUS`` of the best, the one turned least from the camera wins: a
        person on a call faces the screen, and the tracker then stays on that solution.
        """
        fits = []
        ok, rvec, tvec = cv2.solvePnP(self._object, image, camera, dist, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            fits.append((np.asarray(rvec, np.float64), np.asarray(tvec, np.float64)))
            # Facing the camera from where SQPnP put the face: rotate the head frame onto the viewing ray.
            ok, rvec, tvec = cv2.solvePnP(
                self._object,
                image,
                camera,
                dist,
                rvec=np.zeros((3, 1)),
                tvec=fits[0][1].reshape(3, 1).copy(),
                useExtrinsicGuess=True,
                flags=cv2.SOLVEPNP_ITERATIVE,
            )
            if ok:
                fits.append((np.asarray(rvec, np.float64), np.asarray(tvec, np.float64)))
        scored = []
        for rvec, tvec in fits:
            pose = _checked(rvec, tvec)
            if pose is not None:
                projected, _ = cv2.projectPoints(self._object, rvec, tvec, camera, dist)
                error = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image) ** 2, axis=1))))
                scored.append((error, pose))
        if not scored:
            return None
        best = min(error for error, _ in scored)
        near = [pose for error, pose in scored if error <= best * _AMBIGUOUS + 0.5]
        return min(near, key=lambda pose: pose.angle_from_camera_deg())


# Fits whose RMS reprojection error is within this factor (plus half a pixel) of the best count as equally good.
_AMBIGUOUS = 1.25


def _checked(rvec: Float64Array, tvec: Float64Array) -> HeadPose | None:
    """The pose of a solvePnP result, or None where it is implausible (behind the camera, too near or far)."""
    pose = HeadPose.from_vectors(np.asarray(rvec, np.float64).reshape(3), np.asarray(tvec, np.float64).reshape(3))
    if not MIN_DEPTH_MM <= float(pose.centre[2]) <= MAX_DEPTH_MM or not np.all(np.isfinite(pose.rotation)):
        return None
    return pose
