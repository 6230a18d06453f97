"""Frame + head pose -> the normalised eye strip the network sees, and the homography to paste back with."""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import NDArray

from engine.data.face_to_strip import warp_to_strip
from engine.runtime.pose import HeadPose
from engine.strip import DEFAULT_STRIP, StripGeometry, apply_homography, invert_homography, strip_homography

Float64Array = NDArray[np.float64]
Uint8Array = NDArray[np.uint8]

# Extra frame pixels around the strip's footprint, so bilinear sampling at its edge reads real pixels.
_CROP_MARGIN_PX = 2


def frame_to_strip_homography(
    camera: Float64Array, pose: HeadPose, geometry: StripGeometry = DEFAULT_STRIP
) -> Float64Array:
    """The ``3 x 3`` homography from frame pixels to strip pixels (OpenCV pixel convention on both sides)."""
    h = strip_homography(
        torch.from_numpy(np.asarray(camera, dtype=np.float64)),
        torch.from_numpy(pose.centre),
        torch.from_numpy(pose.rotation),
        geometry,
    )
    return np.asarray(h.numpy(), dtype=np.float64)


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
    if not np.all(np.isfinite(points)):
        return None
    x0 = max(0, math.floor(float(points[:, 0].min())) - margin)
    y0 = max(0, math.floor(float(points[:, 1].min())) - margin)
    x1 = min(width, math.ceil(float(points[:, 0].max())) + margin + 1)
    y1 = min(height, math.ceil(float(points[:, 1].max())) + margin + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1
