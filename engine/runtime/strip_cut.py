"""Frame + head pose -> the normalised eye strip the network sees, and the homography to paste back with."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from engine.data.face_to_strip import warp_to_strip
from engine.runtime.pose import HeadPose
from engine.strip import DEFAULT_STRIP, StripGeometry, apply_homography, invert_homography

Float64Array = NDArray[np.float64]
Uint8Array = NDArray[np.uint8]

# Extra frame pixels around the strip's footprint, so bilinear sampling at its edge reads real pixels.
_CROP_MARGIN_PX = 2


def frame_to_strip_homography(
    camera: Float64Array, pose: HeadPose, geometry: StripGeometry = DEFAULT_STRIP
) -> Float64Array:
    """The ``3 x 3`` homography from frame pixels to strip pixels (OpenCV pixel convention on both sides).

    :func:`engine.strip.strip_homography` for one pose, written out in floats: it runs per face and frame, and
    torch's per-operation overhead on 3 x 3 matrices cost 0.1 ms of a 3 ms GPU frame. A test holds the two equal.
    """
    cx, cy, cz = (float(v) for v in pose.centre)
    dist = math.sqrt(cx * cx + cy * cy + cz * cz)
    if not dist > 0.0:
        raise ValueError(f"the head centre must not be the camera centre, got {pose.centre}")
    fx, fy, fz = cx / dist, cy / dist, cz / dist  # the normalised camera's viewing direction
    hx, hy, hz = (float(v) for v in pose.rotation[:, 0])  # the head's x axis
    # down = forward x head_x, normalised; right = down x forward (the head's roll removed).
    dx, dy, dz = fy * hz - fz * hy, fz * hx - fx * hz, fx * hy - fy * hx
    norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-9)
    dx, dy, dz = dx / norm, dy / norm, dz / norm
    rot = np.array([[dy * fz - dz * fy, dz * fx - dx * fz, dx * fy - dy * fx], [dx, dy, dz], [fx, fy, fz]])
    rot[2] *= geometry.distance_mm / dist  # S = diag(1, 1, distance / |centre|)
    k_strip = geometry.camera_matrix()
    k_strip[:2, 2] -= 0.5  # OpenCV pixel centres sit at integers, ours at +0.5
    homography: Float64Array = k_strip @ rot @ invert_homography(np.asarray(camera, dtype=np.float64))
    return homography


def strip_footprint(
    homography: Float64Array, frame_size: tuple[int, int], geometry: StripGeometry = DEFAULT_STRIP
) -> tuple[int, int, int, int] | None:
    """The frame box (x0, y0, x1, y1), exclusive ends, that the strip sees, clipped to a ``(height, width)`` frame.

    None if the strip lies entirely outside the frame.
    """
    w, h = geometry.width, geometry.height
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    return clipped_box(apply_homography(invert_homography(homography), corners), frame_size, _CROP_MARGIN_PX)


def cut_strip(frame: Uint8Array, homography: Float64Array, geometry: StripGeometry = DEFAULT_STRIP) -> Uint8Array:
    """Warp the strip that ``homography`` (frame -> strip pixels) defines out of an ``H x W x 3`` uint8 frame.

    Only the strip's footprint is touched: the frame is cropped to it first (a full-frame warp or resize per
    face would cost more than the network at 1080p). Where the strip samples the frame more coarsely than one
    pixel per pixel (a large face), the crop is first shrunk with area averaging, because a bilinear warp alone
    would alias lashes and iris texture. Outside the frame the border is replicated.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be H x W x 3 uint8, got {frame.shape} {frame.dtype}")
    box = strip_footprint(homography, (frame.shape[0], frame.shape[1]), geometry)
    if box is None:
        # Nothing of the frame is visible: the replicated border of the whole frame is all there is.
        box = (0, 0, frame.shape[1], frame.shape[0])
    x0, y0, x1, y1 = box
    to_frame = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    # The same warp (area shrink, bilinear, replicated border) that cuts strips out of dataset faces.
    return warp_to_strip(frame[y0:y1, x0:x1], np.asarray(homography, dtype=np.float64) @ to_frame, geometry)


def strip_to_chw(strip: Uint8Array, out: NDArray[np.float32]) -> None:
    """Write an ``h x w x 3`` uint8 strip into ``out`` (``3 x h x w`` float32, e.g. one row of a batch) in [0, 1]."""
    if out.shape != (3, *strip.shape[:2]) or strip.ndim != 3 or strip.shape[2] != 3:
        raise ValueError(f"cannot write a {strip.shape} strip into a {out.shape} array")
    np.multiply(strip.transpose(2, 0, 1), np.float32(1.0 / 255.0), out=out, casting="unsafe")


def clipped_box(points: Float64Array, frame_size: tuple[int, int], margin: int = 0) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, x1, y1), exclusive ends, around ``points`` grown by ``margin``, clipped to the frame."""
    height, width = frame_size
    # A handful of corners per call, several calls per face and frame: Python's min and max beat numpy's here.
    xs, ys = np.asarray(points, dtype=np.float64).T.tolist()
    if not all(math.isfinite(value) for value in xs + ys):
        return None
    x0 = max(0, math.floor(min(xs)) - margin)
    y0 = max(0, math.floor(min(ys)) - margin)
    x1 = min(width, math.ceil(max(xs)) + margin + 1)
    y1 = min(height, math.ceil(max(ys)) + margin + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1
