"""Cutting our normalised eye strip out of a dataset's normalised face image.

Real gaze datasets (GazeCapture and MPIIFaceGaze as preprocessed by FAZE, ETH-XGaze) ship faces already
normalised in the sense of Zhang et al. (ETRA 2018), but around their own "face centre" and with their own
virtual camera. Re-normalising such a face around our head-frame origin (the eye-corner midpoint) is one more
homography, built with :func:`engine.strip.strip_homography` so that the strip matches what the synthetic
renderer draws and what the runtime cuts out of webcam frames.

Geometry of a normalised face (see :class:`FaceNormalisation`): the face camera looks at the face centre,
which sits ``distance_mm`` in front of it on the optical axis; the head rotation relative to that camera is
the dataset's head label. One approximation is unavoidable: the normalisation warps the original image, so
the face keeps the perspective of the original (unknown) camera distance and only its lateral scale matches a
face at ``distance_mm``. We place the eye midpoint at ``(0, 0, distance) + R_h @ eye_offset`` as if the head
really were at ``distance_mm``; the lateral position is exact and only the depth of the offset is off (by a
factor ``distance / original distance``), a second-order error of well under a strip pixel for the
few-centimetre offsets involved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from engine.strip import (
    DEFAULT_EYE_MODEL,
    DEFAULT_STRIP,
    EyeModel,
    StripGeometry,
    apply_homography,
    invert_homography,
    normalising_rotation,
    pitch_yaw_from_rotation,
    pitch_yaw_to_vector,
    rotation_from_pitch_yaw,
    strip_homography,
    vector_to_pitch_yaw,
)

Float64Array = NDArray[np.float64]
Uint8Array = NDArray[np.uint8]

# ETH-XGaze centres its faces on the eye corners and the two nose wings (alar points: landmarks 32 and 36 of
# the 68-point scheme, counted from 1). The eye model has no nose wings, so these are anthropometric means in
# the head frame (mm; y down, z toward the camera is negative), subject's right first.
NOSE_WINGS_MM: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (-12.0, 40.0, -12.0),
    (12.0, 40.0, -12.0),
)

# Height of an open eye's palpebral fissure (adult mean about 9-11 mm); the eye model only fixes the corners.
OPEN_APERTURE_HEIGHT_MM = 10.0


@dataclass(frozen=True)
class FaceNormalisation:
    """The virtual camera of a dataset's normalised faces, and where our eye midpoint lies in its face.

    ``eye_offset_mm`` is the head-frame position of our head-frame origin (the midpoint of the four eye
    corners) relative to the dataset's face centre, the point its normalised camera looks at.
    """

    focal: float
    distance_mm: float
    size: int
    eye_offset_mm: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.focal <= 0 or self.distance_mm <= 0:
            raise ValueError(f"focal and distance_mm must be positive, got {self.focal}, {self.distance_mm}")
        if self.size < 8:
            raise ValueError(f"face images must be at least 8 pixels square, got {self.size}")
        if len(self.eye_offset_mm) != 3:
            raise ValueError(f"eye_offset_mm must have 3 components, got {self.eye_offset_mm}")

    def camera_matrix(self) -> Float64Array:
        """The face camera's 3 x 3 intrinsics, principal point at the image centre.

        ``size / 2`` in OpenCV's pixel convention (pixel centres at integers), exactly as the datasets' own
        normalisation code builds it, which is also the convention :func:`strip_homography` expects.
        """
        c = self.size / 2.0
        return np.array([[self.focal, 0.0, c], [0.0, self.focal, c], [0.0, 0.0, 1.0]])


def eye_offset_from_face_centre(
    point_groups: Sequence[NDArray[np.floating[Any]]],
) -> tuple[float, float, float]:
    """Head-frame offset of the eye-corner midpoint from a face centre defined by groups of points.

    The face centre is the mean of the groups' means (one group: a plain mean of its points; two groups of
    different sizes: the midpoint of their centroids, as ETH-XGaze defines it). Points are ``[n, 3]`` arrays
    in the head frame, whose origin is the eye-corner midpoint, so the offset is minus the centre.
    """
    if not point_groups:
        raise ValueError("need at least one group of face points")
    means = []
    for group in point_groups:
        pts = np.asarray(group, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] == 0:
            raise ValueError(f"each group of face points must be n x 3 with n >= 1, got {pts.shape}")
        means.append(pts.mean(axis=0))
    centre = np.mean(means, axis=0)
    return (0.0 - float(centre[0]), 0.0 - float(centre[1]), 0.0 - float(centre[2]))


def faze_normalisation(model: EyeModel = DEFAULT_EYE_MODEL) -> FaceNormalisation:
    """FAZE/ST-ED faces (GazeCapture, MPIIFaceGaze): f = 500 px at 600 mm, 128 px square.

    Face centre: the mean of the four eye corners and the two mouth corners.
    """
    six = np.concatenate((model.eye_corners(), model.face_points()[1:3]))
    return FaceNormalisation(500.0, 600.0, 128, eye_offset_from_face_centre([six]))


def xgaze_normalisation(
    model: EyeModel = DEFAULT_EYE_MODEL,
    nose_wings: Sequence[Sequence[float]] = NOSE_WINGS_MM,
) -> FaceNormalisation:
    """ETH-XGaze faces: f = 960 px at 600 mm, 224 px square.

    Face centre: the midpoint of the eye-corner centroid and the nose-wing centroid. This follows the official
    normalisation code (``normalizeData_face`` of the ETH-XGaze repository), which averages the two centroids
    rather than all six points; the difference is about 7 mm (13 strip pixels) vertically.
    """
    groups = [model.eye_corners(), np.asarray(nose_wings, dtype=np.float64)]
    return FaceNormalisation(960.0, 600.0, 224, eye_offset_from_face_centre(groups))


FAZE_NORMALISATION = faze_normalisation()
XGAZE_NORMALISATION = xgaze_normalisation()


# --- geometry of one cut ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripCut:
    """How to cut a strip out of a normalised face, and the labels in the strip's frame.

    Shapes follow the labels' leading dimensions: ``homography`` ``[..., 3, 3]`` (face pixels to strip
    pixels, OpenCV pixel convention), ``rotation`` ``[..., 3, 3]`` (face camera frame to strip camera frame),
    ``centre`` ``[..., 3]`` (the eye midpoint in the face camera, mm), ``gaze`` and ``head`` ``[..., 2]``
    (pitch, yaw).
    """

    homography: Tensor
    rotation: Tensor
    centre: Tensor
    gaze: Tensor
    head: Tensor


def eye_midpoint_in_face_camera(head_rotation: Tensor, normalisation: FaceNormalisation) -> Tensor:
    """Position ``[..., 3]`` (mm) of the eye-corner midpoint in the face camera.

    ``head_rotation`` is ``[..., 3, 3]``. The face centre is at ``(0, 0, distance_mm)``; the offset turns with
    the head.
    """
    offset = torch.tensor(normalisation.eye_offset_mm, dtype=head_rotation.dtype)
    face_centre = torch.tensor([0.0, 0.0, normalisation.distance_mm], dtype=head_rotation.dtype)
    return face_centre + (head_rotation @ offset.unsqueeze(-1)).squeeze(-1)


def plan_strip_cut(
    gaze: Tensor,
    head: Tensor,
    normalisation: FaceNormalisation,
    geometry: StripGeometry = DEFAULT_STRIP,
) -> StripCut:
    """The homography and strip-frame labels for faces with (pitch, yaw) ``gaze`` and ``head`` ``[..., 2]``.

    Computed in float64 whatever the input dtype, since the homography is applied to pixel coordinates.
    """
    gaze64 = gaze.to(torch.float64)
    head_rotation = rotation_from_pitch_yaw(head.to(torch.float64))
    centre = eye_midpoint_in_face_camera(head_rotation, normalisation)
    k_face = torch.as_tensor(normalisation.camera_matrix(), dtype=torch.float64)
    homography = strip_homography(k_face, centre, head_rotation, geometry)
    rotation = normalising_rotation(centre, head_rotation)
    # The dataset's gaze starts at its face centre and ours at the eye midpoint. Re-aiming the ray from the
    # new origin would need the gaze target's distance, which the labels do not carry; for targets tens of
    # centimetres away the change is small, so we ignore the shift and only rotate the frame.
    gaze_strip = vector_to_pitch_yaw((rotation @ pitch_yaw_to_vector(gaze64).unsqueeze(-1)).squeeze(-1))
    head_strip = pitch_yaw_from_rotation(rotation @ head_rotation)
    return StripCut(homography, rotation, centre, gaze_strip, head_strip)


# --- pixels -------------------------------------------------------------------------------------------------


def warp_to_strip(
    face: Uint8Array, homography: NDArray[np.floating[Any]], geometry: StripGeometry = DEFAULT_STRIP
) -> Uint8Array:
    """Warp an ``h x w x c`` uint8 face into a ``geometry.height x geometry.width x c`` strip.

    Bilinear, replicating the border (a turned head can push part of the strip outside the face image). When
    the strip samples the face more coarsely than one pixel per pixel, the face is first shrunk with area
    averaging, since a bilinear warp alone would alias.
    """
    if face.ndim != 3 or face.dtype != np.uint8:
        raise ValueError(f"face must be an h x w x c uint8 image, got {face.shape} {face.dtype}")
    h = np.asarray(homography, dtype=np.float64)
    if h.shape != (3, 3):
        raise ValueError(f"homography must be 3 x 3, got {h.shape}")
    src = face
    shrink = 1.0 / pixels_per_strip_pixel(h, geometry)
    if shrink < 1.0:
        src, h = _shrink_face(face, h, shrink)
    out = cv2.warpPerspective(
        np.ascontiguousarray(src),
        h,
        (geometry.width, geometry.height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    # OpenCV drops a trailing channel axis of length 1; keep the layout the caller gave.
    return np.asarray(out, dtype=np.uint8).reshape(geometry.height, geometry.width, face.shape[2])


def pixels_per_strip_pixel(homography: Float64Array, geometry: StripGeometry = DEFAULT_STRIP) -> float:
    """Linear sampling step of the source image (face or frame) at the strip's centre: the square root of the
    Jacobian of the strip -> source map.

    Element-wise (no ``np.linalg``): this runs per frame in the runtime's strip cut, where a LAPACK call leaves its
    thread pool spinning on the cores MediaPipe and the network need.
    """
    cx, cy = geometry.width / 2.0 - 0.5, geometry.height / 2.0 - 0.5
    xy = apply_homography(invert_homography(homography), np.array([[cx, cy], [cx + 1.0, cy], [cx, cy + 1.0]]))
    (ax, ay), (bx, by) = xy[1] - xy[0], xy[2] - xy[0]
    return math.sqrt(abs(float(ax * by - ay * bx)))


def _shrink_face(face: Uint8Array, homography: Float64Array, scale: float) -> tuple[Uint8Array, Float64Array]:
    """Area-shrink ``face`` by about ``scale`` and fold the resize into ``homography``."""
    fh, fw = face.shape[:2]
    nw, nh = max(1, round(fw * scale)), max(1, round(fh * scale))
    small = np.asarray(cv2.resize(face, (nw, nh), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    small = small.reshape(nh, nw, face.shape[2])
    sx, sy = nw / fw, nh / fh
    # cv2.resize maps pixel centres as x_small = (x + 0.5) * s - 0.5; this is its inverse.
    to_face = np.array([[1.0 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1.0 / sy, 0.5 / sy - 0.5], [0.0, 0.0, 1.0]])
    return small, np.asarray(homography @ to_face, dtype=np.float64)


def equalise_luma(rgb: Uint8Array) -> Uint8Array:
    """Histogram-equalise the luma (Y of YCrCb) of an RGB uint8 image, keeping its chroma (as FAZE does)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an h x w x 3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    ycrcb = np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb))
    ycrcb[:, :, 0] = np.asarray(cv2.equalizeHist(np.ascontiguousarray(ycrcb[:, :, 0])))
    return np.asarray(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB))


# --- the eye-region mask ------------------------------------------------------------------------------------


def eye_region_mask(
    geometry: StripGeometry = DEFAULT_STRIP,
    model: EyeModel = DEFAULT_EYE_MODEL,
    *,
    pad_mm: float = 3.0,
    softness_px: float = 2.0,
) -> Tensor:
    """The region a redirector may change, ``1 x H x W`` float32 in [0, 1], for a frontal mean head.

    Two ellipses, one per eye: centred on the midpoint of the eye's corners, the long axis along the corners
    (spanning them) and the short axis the open aperture's height (:data:`OPEN_APERTURE_HEIGHT_MM`), both
    grown by ``pad_mm`` so that lids moving with the gaze stay inside. The edge ramps from 1 to 0 over
    ``softness_px``.
    """
    if pad_mm < 0 or softness_px <= 0:
        raise ValueError(f"pad_mm must be >= 0 and softness_px > 0, got {pad_mm}, {softness_px}")
    ys = torch.arange(geometry.height, dtype=torch.float64) + 0.5  # pixel centres, as geometry.project
    xs = torch.arange(geometry.width, dtype=torch.float64) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    origin = torch.tensor([0.0, 0.0, geometry.distance_mm], dtype=torch.float64)
    corners = torch.as_tensor(model.eye_corners(), dtype=torch.float64).reshape(2, 2, 3) + origin
    mask = torch.zeros_like(gx)
    for eye in corners:
        ends = geometry.project(eye)
        centre = ends.mean(dim=0)
        axis = ends[1] - ends[0]
        px_per_mm = geometry.focal / float(eye[:, 2].mean())
        a = float(axis.norm()) / 2.0 + pad_mm * px_per_mm
        b = (OPEN_APERTURE_HEIGHT_MM / 2.0 + pad_mm) * px_per_mm
        angle = math.atan2(float(axis[1]), float(axis[0]))
        mask = torch.maximum(mask, _soft_ellipse(gx, gy, centre, a, b, angle, softness_px))
    return mask.to(torch.float32).unsqueeze(0)


def _soft_ellipse(
    gx: Tensor, gy: Tensor, centre: Tensor, a: float, b: float, angle: float, softness_px: float
) -> Tensor:
    """1 inside the ellipse, 0 outside, ramping linearly over ``softness_px`` across its edge."""
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = gx - centre[0], gy - centre[1]
    u = (c * dx + s * dy) / a
    v = (-s * dx + c * dy) / b
    r = torch.sqrt(u * u + v * v)
    # First-order distance to the edge: (r - 1) / |grad r|, with |grad r| = sqrt(u²/a² + v²/b²) / r.
    grad = torch.sqrt(u * u / (a * a) + v * v / (b * b)).clamp_min(1e-9) / r.clamp_min(1e-9)
    distance = (r - 1.0) / grad
    return (0.5 - distance / softness_px).clamp(0.0, 1.0)
