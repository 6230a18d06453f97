"""Network output -> frame: apply the strip-space flow and residual to the full-resolution frame.

The network sees a 64 x 256 strip, often coarser than the webcam image; pasting its ``strip_out`` back would
blur skin and lashes. Instead the flow is carried back: for each frame pixel in an eye box, its strip position
``q = H p`` picks up the flow there, the strip source ``q + flow(q)`` is mapped back to the frame through
``H^-1``, and the *original* frame is resampled at that point. The residual (times the network's mask) is
sampled at ``q`` and added. A feathered eye-region mask, also sampled at ``q``, blends the result in, so there
is no seam; pixels the mask does not reach keep their exact values (bit-identical).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from engine.data.face_to_strip import eye_region_mask
from engine.runtime.strip_cut import clipped_box
from engine.strip import DEFAULT_EYE_MODEL, DEFAULT_STRIP, EyeModel, StripGeometry, apply_homography, invert_homography

Float32Array = NDArray[np.float32]
Float64Array = NDArray[np.float64]
Uint8Array = NDArray[np.uint8]
Box = tuple[int, int, int, int]

# Frame pixels of margin around each eye box: bilinear sampling of the mask reaches half a pixel further.
_BOX_MARGIN_PX = 1


@dataclass(frozen=True)
class EyeRegions:
    """Where the correction may change the strip: a feathered mask ``[H, W]`` in [0, 1] and, per eye, the strip
    box (x0, y0, x1, y1) (OpenCV pixel coordinates, inclusive of the pixel edges) that holds its non-zero part."""

    mask: Float32Array
    boxes: tuple[tuple[float, float, float, float], ...]


@functools.cache  # 5 ms here: once per (geometry, model, padding) instead of once per stream
def make_eye_regions(
    geometry: StripGeometry = DEFAULT_STRIP,
    model: EyeModel = DEFAULT_EYE_MODEL,
    *,
    pad_mm: float = 4.0,
    feather_px: float = 6.0,
) -> EyeRegions:
    """The eye regions of :func:`engine.data.face_to_strip.eye_region_mask` (the region the network is trained
    to change), grown by ``pad_mm`` for heads that are not the mean head and feathered over ``feather_px`` strip
    pixels so the corrected eye fades into the untouched skin. Cached: callers share the result, and must not
    modify its mask."""
    mask = eye_region_mask(geometry, model, pad_mm=pad_mm, softness_px=feather_px)[0].numpy().astype(np.float32)
    boxes = []
    half = geometry.width // 2
    # The eyes sit on either side of the strip's centre line (the head frame's origin is between them).
    for x_start, x_stop in ((0, half), (half, geometry.width)):
        ys, xs = np.nonzero(mask[:, x_start:x_stop] > 0.0)
        if len(xs) == 0:
            raise ValueError("the eye-region mask is empty on one side of the strip")
        xs = xs + x_start
        boxes.append((float(xs.min()) - 0.5, float(ys.min()) - 0.5, float(xs.max()) + 0.5, float(ys.max()) + 0.5))
    return EyeRegions(mask, tuple(boxes))


def eye_boxes_in_frame(homography: Float64Array, regions: EyeRegions, frame_size: tuple[int, int]) -> list[Box]:
    """The frame boxes (x0, y0, x1, y1), exclusive ends, that hold each eye region, clipped to the frame."""
    return _eye_boxes(invert_homography(homography), regions, frame_size)


def _eye_boxes(inverse: Float64Array, regions: EyeRegions, frame_size: tuple[int, int]) -> list[Box]:
    """:func:`eye_boxes_in_frame` from the inverse homography (strip -> frame pixels) a caller already has."""
    corners = np.array(
        [[x, y] for x0, y0, x1, y1 in regions.boxes for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    )
    in_frame = apply_homography(inverse, corners)  # all eyes' corners in one pass
    boxes = []
    for i in range(len(regions.boxes)):
        box = clipped_box(in_frame[4 * i : 4 * i + 4], frame_size, _BOX_MARGIN_PX)
        if box is not None:
            boxes.append(box)
    return boxes


def _sample(image: Float32Array, u: Float32Array, v: Float32Array) -> Float32Array:
    """Bilinear samples of strip-space planes ``[H, W]`` or ``[H, W, C]`` at (u, v); zero outside the strip."""
    out = cv2.remap(
        image, u, v, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0, 0.0, 0.0, 0.0)
    )
    return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class Patch:
    """One corrected eye box, computed from the original frame and not yet written.

    ``box`` (x0, y0, x1, y1), exclusive ends; ``pixels`` its ``h x w x 3`` uint8 result; ``reached`` ``h x w``
    where the blend mask is above zero (the only pixels that may differ from the original).
    """

    box: Box
    pixels: Uint8Array
    reached: NDArray[np.bool_]


def face_patches(
    frame: Uint8Array,
    homography: Float64Array,
    flow: Float32Array,
    residual: Float32Array | None,
    opacity: float,
    regions: EyeRegions,
) -> list[Patch]:
    """One face's corrected eyes as :class:`Patch` es, read from ``frame`` and written nowhere yet.

    ``frame`` is the original ``H x W x 3`` uint8 frame; ``homography`` maps frame pixels to strip pixels;
    ``flow`` ``[2, h, w]`` is the network's backward flow in strip pixels; ``residual`` ``[3, h, w]`` is its
    residual already multiplied by its mask, in [0, 1] intensity units, or None to paste the warp alone;
    ``opacity`` in [0, 1] scales the blend mask. Computing every face's patches before writing any (see
    :func:`write_patches`) lets a frame be corrected in place: no face then reads pixels another has changed.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be H x W x 3 uint8, got {frame.shape} {frame.dtype}")
    h, w = regions.mask.shape
    if flow.shape != (2, h, w) or (residual is not None and residual.shape != (3, h, w)):
        raise ValueError(
            f"flow and residual must be 2 x {h} x {w} and 3 x {h} x {w}, got {flow.shape}, "
            f"{None if residual is None else residual.shape}"
        )
    if opacity <= 0.0:
        return []
    inverse = invert_homography(homography)
    # Two 3-channel planes, so each box needs two remaps instead of six single-channel ones.
    mask_flow = np.ascontiguousarray(np.stack((regions.mask, flow[0], flow[1]), axis=-1), dtype=np.float32)
    residual_hwc = None
    if residual is not None:
        residual_hwc = np.ascontiguousarray(np.asarray(residual, dtype=np.float32).transpose(1, 2, 0))
    patches = []
    for box in _eye_boxes(inverse, regions, (frame.shape[0], frame.shape[1])):
        patch = _patch(frame, box, homography, inverse, mask_flow, residual_hwc, min(opacity, 1.0))
        if patch is not None:
            patches.append(patch)
    return patches


def write_patches(out: Uint8Array, patches: list[Patch]) -> None:
    """Write ``patches`` into ``out`` (the original frame, or a copy of it), in order.

    A patch holds the original value wherever its mask does not reach, so it is written whole, which is a plain
    copy; where it overlaps an earlier patch (faces close together) only the pixels it reaches are written, so
    the earlier face's eyes stay.
    """
    written: list[Box] = []
    for patch in patches:
        x0, y0, x1, y1 = patch.box
        region = out[y0:y1, x0:x1]
        if region.shape != patch.pixels.shape:
            raise ValueError(f"patch {patch.box} of shape {patch.pixels.shape} does not fit a frame {out.shape}")
        if any(x0 < bx1 and bx0 < x1 and y0 < by1 and by0 < y1 for bx0, by0, bx1, by1 in written):
            np.copyto(region, patch.pixels, where=patch.reached[:, :, None])
        else:
            region[...] = patch.pixels
        written.append(patch.box)


def paste_face(
    out: Uint8Array,
    frame: Uint8Array,
    homography: Float64Array,
    flow: Float32Array,
    residual: Float32Array | None,
    opacity: float,
    regions: EyeRegions,
) -> list[Box]:
    """Write one face's corrected eyes into ``out`` (a copy of ``frame``); return the frame boxes written.

    :func:`face_patches` then :func:`write_patches`; for several faces in one frame, compute all their patches
    first and write them together.
    """
    if out.shape != frame.shape:
        raise ValueError(f"out and frame must be the same H x W x 3 uint8 shape, got {out.shape}, {frame.shape}")
    patches = face_patches(frame, homography, flow, residual, opacity, regions)
    write_patches(out, patches)
    return [patch.box for patch in patches]


def _patch(
    frame: Uint8Array,
    box: Box,
    homography: Float64Array,
    inverse: Float64Array,
    mask_flow: Float32Array,
    residual: Float32Array | None,
    opacity: float,
) -> Patch | None:
    """The corrected pixels of one frame box; None if the blend mask does not reach into it.

    ``mask_flow`` is ``h x w x 3`` (eye-region mask, flow x, flow y) and ``residual`` ``h x w x 3`` (or None for
    none), in strip space.

    Each frame pixel ``g`` sits at strip point ``q = H g`` and takes its colour from ``H^-1 (q + f(q))``. Its
    displacement is written in closed form, ``d = (A f - g C f) / (W + C f)`` per axis, where ``A`` is that
    axis's row of ``H^-1`` and ``C`` its last row (both without the constant column), and ``W``, the last
    component of ``H^-1 q``, is one over the denominator of ``H g``. Exactly zero for a zero flow, so an
    identity network reproduces the frame bit for bit, and about half the arithmetic of projecting ``q + f`` and
    ``q`` back separately: this is per pixel, per eye, per frame.
    """
    x0, y0, x1, y1 = box
    gx = np.arange(x0, x1, dtype=np.float32)[None, :]  # -> 1 x w
    gy = np.arange(y0, y1, dtype=np.float32)[:, None]  # -> h x 1
    # Python floats: numpy keeps float32 arrays float32 when a Python scalar multiplies them.
    h00, h01, h02, h10, h11, h12, h20, h21, h22 = homography.ravel().tolist()
    # Each term is a row or a column; one broadcast add each makes the h x w plane.
    big_w = 1.0 / ((h20 * gx) + (h21 * gy + h22))  # -> h x w: W, 1 / the denominator of H g
    u = ((h00 * gx) + (h01 * gy + h02)) * big_w  # -> h x w: the strip position of each frame pixel
    v = ((h10 * gx) + (h11 * gy + h12)) * big_w
    sampled = _sample(mask_flow, u, v)  # -> h x w x 3
    alpha = sampled[:, :, 0]
    if opacity < 1.0:
        alpha *= np.float32(opacity)
    if not alpha.any():  # bilinear samples of a mask in [0, 1]: never negative
        return None
    i00, i01, _, i10, i11, _, i20, i21, _ = inverse.ravel().tolist()
    fx, fy = sampled[:, :, 1], sampled[:, :, 2]
    cf = i20 * fx + i21 * fy
    den = big_w + cf
    map_x = gx + (i00 * fx + i01 * fy - gx * cf) / den
    map_y = gy + (i10 * fx + i11 * fy - gy * cf) / den
    warped = cv2.remap(frame, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    original = frame[y0:y1, x0:x1]
    if residual is None:
        # (alpha * warped + (1 - alpha) * original) / (1 + 1e-5), rounded: where alpha is 0 that is the original
        # value exactly (the 1e-5 moves it by under 0.003 of a level).
        blended = np.asarray(cv2.blendLinear(warped, original, alpha, 1.0 - alpha), dtype=np.uint8)
    else:
        corrected = np.asarray(warped, dtype=np.float32) + _sample(residual, u, v) * np.float32(255.0)
        base = original.astype(np.float32)
        blended = np.clip(np.rint(base + alpha[:, :, None] * (corrected - base)), 0.0, 255.0).astype(np.uint8)
    return Patch(box, blended, alpha > 0.0)
