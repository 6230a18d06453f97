"""The normalised eye strip: its virtual camera, the 3-D eye model, and the rotation conventions.

This module is the single source of truth for the geometry shared by the synthetic renderer (which renders
strips directly in the normalised camera), the real-dataset loaders (which cut strips out of normalised faces)
and the runtime corrector (which cuts strips out of webcam frames). Changing a constant here changes all three
together, which is the point: a mismatch between the training and runtime face models shows up as a constant
gaze-pitch offset.

Conventions (Zhang, Sugano, Bulling, ETRA 2018 normalisation, OpenCV camera axes):

* camera frame: x to the image right, y down, z forward (away from the camera into the scene), millimetres;
* head frame: the same axes when the face looks straight into the camera; origin at the midpoint of the four
  eye corners (what the runtime can measure from landmarks); +x is the subject's left;
* a direction (pitch, yaw) in radians maps to ``(-cos p sin y, -sin p, -cos p cos y)``: (0, 0) points at the
  camera, positive pitch is up, positive yaw is toward the image left (the subject's right);
* a head pose (pitch, yaw) is the direction the face points at, and its rotation is
  ``R = R_y(yaw) R_x(-pitch)`` so that ``R @ (0, 0, -1)`` is that direction. In the normalised frame the head
  has no roll by construction (its x axis lies in the camera's x-z plane), so (pitch, yaw) describe it fully.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

# --- directions and rotations -------------------------------------------------------------------------------


def pitch_yaw_to_vector(pitch_yaw: Tensor) -> Tensor:
    """Unit direction vectors ``[..., 3]`` from (pitch, yaw) angles ``[..., 2]`` in radians."""
    _check_last_dim(pitch_yaw, 2, "pitch_yaw")
    pitch, yaw = pitch_yaw[..., 0], pitch_yaw[..., 1]
    cp = torch.cos(pitch)
    return torch.stack((-cp * torch.sin(yaw), -torch.sin(pitch), -cp * torch.cos(yaw)), dim=-1)


def vector_to_pitch_yaw(vector: Tensor) -> Tensor:
    """(pitch, yaw) ``[..., 2]`` in radians of direction vectors ``[..., 3]`` (need not be unit length)."""
    _check_last_dim(vector, 3, "vector")
    v = vector / vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    pitch = torch.asin((-v[..., 1]).clamp(-1.0, 1.0))
    yaw = torch.atan2(-v[..., 0], -v[..., 2])
    return torch.stack((pitch, yaw), dim=-1)


def rotation_x(angle: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` about the x axis (right-handed)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack((o, z, z, z, c, -s, z, s, c), dim=-1).reshape(*angle.shape, 3, 3)


def rotation_y(angle: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` about the y axis (right-handed)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack((c, z, s, z, o, z, -s, z, c), dim=-1).reshape(*angle.shape, 3, 3)


def rotation_from_pitch_yaw(pitch_yaw: Tensor) -> Tensor:
    """Head/eye rotation ``[..., 3, 3]`` whose forward axis ``R @ (0, 0, -1)`` points along (pitch, yaw)."""
    _check_last_dim(pitch_yaw, 2, "pitch_yaw")
    return rotation_y(pitch_yaw[..., 1]) @ rotation_x(-pitch_yaw[..., 0])


def pitch_yaw_from_rotation(rotation: Tensor) -> Tensor:
    """(pitch, yaw) of the forward axis of rotations ``[..., 3, 3]`` (the inverse of the function above)."""
    if rotation.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must end in 3 x 3, got shape {tuple(rotation.shape)}")
    return vector_to_pitch_yaw(-rotation[..., :, 2])


def angular_error_deg(a: Tensor, b: Tensor) -> Tensor:
    """Angle in degrees between the directions of two (pitch, yaw) tensors ``[..., 2]``."""
    va, vb = pitch_yaw_to_vector(a), pitch_yaw_to_vector(b)
    cos = (va * vb).sum(-1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def mirror_strips(strip: Tensor) -> Tensor:
    """Strips B x C x H x W mirrored left to right (another valid strip: the eyes swap sides)."""
    if strip.ndim != 4:
        raise ValueError(f"strips must be B x C x H x W, got shape {tuple(strip.shape)}")
    return strip.flip(-1)


def mirror_angles(angles: Tensor) -> Tensor:
    """(pitch, yaw) angles B x 2 as seen in the mirrored strip: the yaw changes sign, the pitch stays."""
    if angles.ndim != 2 or angles.shape[1] != 2:
        raise ValueError(f"angles must be B x 2 (pitch, yaw), got shape {tuple(angles.shape)}")
    # Slices and a negation, no constant tensor: building one from Python numbers is a host-to-device copy, which
    # a CUDA graph capture (the torch backend's) refuses.
    return torch.stack((angles[:, 0], -angles[:, 1]), dim=1)


def _check_last_dim(t: Tensor, n: int, name: str) -> None:
    if t.ndim == 0 or t.shape[-1] != n:
        raise ValueError(f"{name} must have a last dimension of {n}, got shape {tuple(t.shape)}")


# --- the strip's virtual camera -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StripGeometry:
    """The normalised virtual camera that sees both eyes.

    It sits ``distance_mm`` from the eye-corner midpoint, looks straight at it with the head's roll removed, and
    its image (``height`` x ``width`` pixels) spans ``width_mm`` at that distance. The focal length follows from
    these, so a larger strip sees the same region at a higher resolution.
    """

    height: int = 64
    width: int = 256
    distance_mm: float = 600.0
    width_mm: float = 128.0

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ValueError(f"strip must be at least 8 x 8 pixels, got {self.height} x {self.width}")
        if self.distance_mm <= 0 or self.width_mm <= 0:
            raise ValueError("distance_mm and width_mm must be positive")

    @property
    def focal(self) -> float:
        """Focal length in pixels."""
        return self.width * self.distance_mm / self.width_mm

    @property
    def mm_per_pixel(self) -> float:
        """Size of one strip pixel at the eye plane, in mm."""
        return self.width_mm / self.width

    def camera_matrix(self) -> npt.NDArray[np.float64]:
        """The 3 x 3 intrinsic matrix (principal point at the strip's centre)."""
        f = self.focal
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0], [0.0, 0.0, 1.0]])

    def project(self, points: Tensor) -> Tensor:
        """Pixel coordinates ``[..., 2]`` (x, y; pixel centres at +0.5) of camera-frame points ``[..., 3]``."""
        _check_last_dim(points, 3, "points")
        z = points[..., 2].clamp_min(1e-6)
        x = self.focal * points[..., 0] / z + self.width / 2.0
        y = self.focal * points[..., 1] / z + self.height / 2.0
        return torch.stack((x, y), dim=-1)

    def pixel_rays(self, height: int | None = None, width: int | None = None) -> Tensor:
        """Unit ray directions ``[h, w, 3]`` through the pixel centres, at this or a lower resolution.

        A lower resolution keeps the same field of view (the renderer draws at random lower resolutions and
        upsamples, as webcams do).
        """
        h = self.height if height is None else height
        w = self.width if width is None else width
        f = self.focal * w / self.width
        ys = (torch.arange(h, dtype=torch.float32) + 0.5 - h / 2.0) / f
        xs = (torch.arange(w, dtype=torch.float32) + 0.5 - w / 2.0) / f
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        d = torch.stack((gx, gy, torch.ones_like(gx)), dim=-1)
        rays: Tensor = d / d.norm(dim=-1, keepdim=True)
        return rays


# --- the 3-D eye model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EyeModel:
    """The mean 3-D eye region in the head frame, in mm.

    Each eye is an eyeball sphere with a lid "shell" around it (an ellipsoid the lids lie on); the eye corners
    are the points of the shell at shell coordinates ``(u, v)`` (x and y over the shell's semi-axes), nasal and
    temporal. The renderer draws subjects around these means; the runtime fits landmarks to them.
    """

    ipd_mm: float = 63.0
    eyeball_radius_mm: float = 12.0
    shell_axes_mm: tuple[float, float, float] = (18.5, 15.0, 13.5)
    nasal_corner_uv: tuple[float, float] = (0.80, 0.06)
    temporal_corner_uv: tuple[float, float] = (0.80, -0.06)
    # Other face points (for head-pose fitting at run time) relative to the eye-corner midpoint: nose tip,
    # mouth corners (subject's right, left) and chin, in the head frame. They are MediaPipe's own canonical face
    # model (canonical_face_model.obj, vertices 1, 61/291 and 152, cm -> mm, y and z flipped to our axes, relative
    # to the midpoint of its eye-corner vertices 33/133/362/263): the runtime fits MediaPipe landmarks, and those
    # follow that model. Textbook anthropometric means (nose tip 47 mm below the eyes and 24 mm in front) put
    # the nose 10 mm lower and 16 mm further back than MediaPipe's mesh does, and the fit made up for it by
    # tilting every head about 20° up (measured on both package photos: 28° and 18°).
    face_points_mm: tuple[tuple[float, float, float], ...] = field(
        default=((0.0, 37.5, -40.1), (-24.6, 69.7, -8.2), (24.6, 69.7, -8.2), (0.0, 120.3, -8.0))
    )

    def corner_offsets(self, side: int) -> npt.NDArray[np.float64]:
        """Nasal and temporal corner offsets ``[2, 3]`` from the eyeball centre of the eye on ``side``.

        ``side`` is -1 for the eye on the image left (the subject's right eye) and +1 for the other.
        """
        ax, ay, az = self.shell_axes_mm
        out = []
        for (u, v), toward in ((self.nasal_corner_uv, -side), (self.temporal_corner_uv, side)):
            z = -az * math.sqrt(max(1.0 - u * u - v * v, 0.0))
            out.append((toward * u * ax, v * ay, z))
        return np.array(out)

    def eyeball_centres(self) -> npt.NDArray[np.float64]:
        """Eyeball centres ``[2, 3]`` (image-left eye first) in the head frame."""
        raw = np.array([[-self.ipd_mm / 2.0, 0.0, 0.0], [self.ipd_mm / 2.0, 0.0, 0.0]])
        centres: npt.NDArray[np.float64] = raw - self._corner_midpoint_raw()
        return centres

    def eye_corners(self) -> npt.NDArray[np.float64]:
        """Eye corners ``[4, 3]`` in image order: left eye outer, left eye inner, right eye inner, right eye outer.

        ("left"/"right" as seen in the image.) Their midpoint is the head-frame origin.
        """
        corners: npt.NDArray[np.float64] = self._corners_raw() - self._corner_midpoint_raw()
        return corners

    def face_points(self) -> npt.NDArray[np.float64]:
        """Nose tip, mouth corners and chin ``[4, 3]`` in the head frame."""
        return np.array(self.face_points_mm)

    def _corners_raw(self) -> npt.NDArray[np.float64]:
        left = np.array([-self.ipd_mm / 2.0, 0.0, 0.0]) + self.corner_offsets(-1)
        right = np.array([self.ipd_mm / 2.0, 0.0, 0.0]) + self.corner_offsets(+1)
        # left eye: temporal corner is outer (image-left side), nasal is inner
        corners: npt.NDArray[np.float64] = np.stack((left[1], left[0], right[0], right[1]))
        return corners

    def _corner_midpoint_raw(self) -> npt.NDArray[np.float64]:
        mid: npt.NDArray[np.float64] = self._corners_raw().mean(axis=0)
        return mid


DEFAULT_STRIP = StripGeometry()
DEFAULT_EYE_MODEL = EyeModel()


# --- normalisation of a real camera view --------------------------------------------------------------------


def normalising_rotation(centre: Tensor, head_rotation: Tensor) -> Tensor:
    """The rotation ``[..., 3, 3]`` from a real camera frame to the normalised one (Zhang et al. 2018).

    ``centre`` ``[..., 3]`` is the eye-corner midpoint in the real camera frame and ``head_rotation``
    ``[..., 3, 3]`` the head frame's orientation there. The normalised camera looks at the centre, and its
    x axis is the head's x axis made orthogonal to the viewing direction, which removes the head's roll.
    """
    _check_last_dim(centre, 3, "centre")
    forward = centre / centre.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    head_x = head_rotation[..., :, 0]
    down = torch.linalg.cross(forward, head_x, dim=-1)
    down = down / down.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    right = torch.linalg.cross(down, forward, dim=-1)
    return torch.stack((right, down, forward), dim=-2)


def strip_homography(
    camera_matrix: Tensor,
    centre: Tensor,
    head_rotation: Tensor,
    geometry: StripGeometry = DEFAULT_STRIP,
) -> Tensor:
    """Homography ``[..., 3, 3]`` mapping real-image pixels to strip pixels.

    ``W = K_strip · S · R · K_real⁻¹`` with ``S = diag(1, 1, distance/|centre|)``: the normalised camera sits
    at the strip's distance from the eye midpoint. Points the homography maps use homogeneous (x, y, 1) pixel
    coordinates in OpenCV's convention (pixel centres at integers).
    """
    rot = normalising_rotation(centre, head_rotation)
    dist = centre.norm(dim=-1)
    scale = torch.diag_embed(
        torch.stack((torch.ones_like(dist), torch.ones_like(dist), geometry.distance_mm / dist), dim=-1)
    )
    k_strip = torch.as_tensor(geometry.camera_matrix(), dtype=rot.dtype)
    # OpenCV pixel centres sit at integers; ours at +0.5: shift the principal point accordingly.
    k_strip = k_strip.clone()
    k_strip[0, 2] -= 0.5
    k_strip[1, 2] -= 0.5
    homography: Tensor = k_strip @ scale @ rot @ torch.linalg.inv(camera_matrix.to(rot.dtype))
    return homography


# --- homographies in numpy (per-frame paths: no BLAS or LAPACK, whose thread pools spin) --------------------


def apply_homography(homography: npt.NDArray[np.float64], points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Map points ``[n, 2]`` (x, y) through a ``3 x 3`` homography."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h00, h01, h02, h10, h11, h12, h20, h21, h22 = _coefficients(homography)
    x, y = pts[:, 0], pts[:, 1]
    # Element-wise rather than a matrix product: an N x 3 @ 3 x 3 product goes through BLAS, whose thread pool
    # costs more than the arithmetic for the few thousand points of an eye box.
    w = h20 * x + h21 * y + h22
    out: npt.NDArray[np.float64] = np.empty_like(pts)
    out[:, 0] = (h00 * x + h01 * y + h02) / w
    out[:, 1] = (h10 * x + h11 * y + h12) / w
    return out


def invert_homography(homography: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Inverse of a ``3 x 3`` homography by its adjugate.

    Written out in Python floats: :func:`numpy.linalg.inv` goes through LAPACK, whose thread pool makes a 3 x 3
    inverse cost up to a millisecond on a busy CPU, and numpy's per-element indexing costs ten times the
    arithmetic; this runs several times per face and frame.
    """
    a, b, c, d, e, f, g, h, i = _coefficients(homography)
    adjugate = (
        (e * i - f * h, c * h - b * i, b * f - c * e),
        (f * g - d * i, a * i - c * g, c * d - a * f),
        (d * h - e * g, b * g - a * h, a * e - b * d),
    )
    det = a * adjugate[0][0] + b * adjugate[1][0] + c * adjugate[2][0]
    if not math.isfinite(det) or abs(det) < 1e-300:
        raise ValueError("homography is singular")
    return np.array(adjugate) / det


def _coefficients(homography: npt.NDArray[np.float64]) -> list[float]:
    """The nine entries of a ``3 x 3`` homography, row by row, as Python floats."""
    h = np.asarray(homography, dtype=np.float64)
    if h.shape != (3, 3):
        raise ValueError(f"homography must be 3 x 3, got {h.shape}")
    values: list[float] = h.ravel().tolist()
    return values
