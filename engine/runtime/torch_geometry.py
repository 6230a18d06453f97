"""The strip cut and the paste-back in torch, for a frame that lives on the GPU.

:mod:`engine.runtime.strip_cut` and :mod:`engine.runtime.paste` do the same with OpenCV on the CPU, which is
what the corrector uses (frames arrive from a decoder on the host, and on a CPU-only machine everything runs
there). On a GPU the network's outputs would otherwise travel to the host and the paste run on the CPU; these
functions keep the frame, the strips and the network outputs on the device and copy back only the eye boxes.
Both implementations follow the same geometry (the same homographies, eye regions and displacement form) and
agree to within rounding, which the tests check on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from engine.data.face_to_strip import pixels_per_strip_pixel
from engine.runtime.paste import EyeRegions, eye_boxes_in_frame
from engine.runtime.strip_cut import strip_footprint
from engine.strip import DEFAULT_STRIP, StripGeometry, invert_homography

Float64Array = NDArray[np.float64]
Box = tuple[int, int, int, int]


def frame_to_tensor(frame: NDArray[np.uint8], device: torch.device | str) -> Tensor:
    """An ``H x W x 3`` uint8 frame as a ``1 x 3 x H x W`` float32 tensor in [0, 255] on ``device``."""
    # uint8 crosses the bus (a quarter of the float32 bytes); the conversion runs on the device. torch wants a
    # writable array; decoders and package loaders sometimes hand out read-only ones.
    array = np.ascontiguousarray(frame) if frame.flags.writeable else frame.copy()
    return torch.from_numpy(array).to(device).permute(2, 0, 1).unsqueeze(0).float()


def face_crop(
    homography: Float64Array, frame_size: tuple[int, int], geometry: StripGeometry = DEFAULT_STRIP
) -> tuple[Box, Float64Array]:
    """The frame box a face's strip cut and paste-back read, and the homography from that crop to the strip.

    Uploading only this crop (a few hundred pixels wide) instead of the whole frame saves most of the
    host-to-device copy: cut and paste-back never look outside the strip's footprint, which holds the eye boxes.
    """
    height, width = frame_size
    box = strip_footprint(homography, frame_size, geometry) or (0, 0, width, height)
    x0, y0 = box[0], box[1]
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    return box, np.asarray(homography, dtype=np.float64) @ shift


def _apply(h: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Map pixel coordinates through a 3 x 3 homography (broadcasting over ``x`` and ``y``)."""
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w


def _grid(x: Tensor, y: Tensor, width: int, height: int) -> Tensor:
    """``grid_sample`` coordinates (align_corners=False) of OpenCV pixel positions (centres at integers)."""
    return torch.stack(((2.0 * x + 1.0) / width - 1.0, (2.0 * y + 1.0) / height - 1.0), dim=-1).unsqueeze(0)


def cut_strip_torch(frame: Tensor, homography: Float64Array, geometry: StripGeometry = DEFAULT_STRIP) -> Tensor:
    """The strip (``3 x h x w`` float32 in [0, 1]) that ``homography`` (frame -> strip pixels) cuts from ``frame``
    (``1 x 3 x H x W`` float32 in [0, 255]), as :func:`engine.runtime.strip_cut.cut_strip` does on the CPU: crop
    to the footprint, shrink with area averaging where the strip samples the frame more coarsely than 1:1,
    bilinear warp with the border replicated."""
    _, _, height, width = frame.shape
    box = strip_footprint(homography, (height, width), geometry) or (0, 0, width, height)
    x0, y0, x1, y1 = box
    crop = frame[:, :, y0:y1, x0:x1]
    to_frame = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    h = np.asarray(homography, dtype=np.float64) @ to_frame
    shrink = 1.0 / pixels_per_strip_pixel(homography, geometry)
    if shrink < 1.0:
        ch, cw = crop.shape[2:]
        nw, nh = max(1, round(cw * shrink)), max(1, round(ch * shrink))
        crop = F.interpolate(crop, size=(nh, nw), mode="area")
        sx, sy = nw / cw, nh / ch
        to_crop = np.array([[1.0 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1.0 / sy, 0.5 / sy - 0.5], [0.0, 0.0, 1.0]])
        h = h @ to_crop
    inverse = torch.as_tensor(invert_homography(h), dtype=torch.float32, device=frame.device)
    ys = torch.arange(geometry.height, dtype=torch.float32, device=frame.device)
    xs = torch.arange(geometry.width, dtype=torch.float32, device=frame.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    fx, fy = _apply(inverse, gx, gy)
    grid = _grid(fx, fy, crop.shape[3], crop.shape[2])
    strip = F.grid_sample(crop, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (strip[0] / 255.0).clamp(0.0, 1.0)


def paste_face_torch(
    out: Tensor,
    frame: Tensor,
    homography: Float64Array,
    flow: Tensor,
    residual: Tensor | None,
    opacity: float,
    regions: EyeRegions,
    mask: Tensor,
) -> list[Box]:
    """Write one face's corrected eyes into ``out`` (``1 x 3 x H x W`` float32, a copy of ``frame``), as
    :func:`engine.runtime.paste.paste_face` does on the CPU; return the frame boxes written.

    ``flow`` ``2 x h x w`` and ``residual`` ``3 x h x w`` (already times the network's mask, or None for the warp
    alone) are the network's outputs on the device; ``mask`` is ``regions.mask`` as a ``1 x 1 x h x w`` tensor on
    the device (made once). Values in ``out`` are rounded to integers, as the uint8 CPU path stores them.
    """
    if opacity <= 0.0:
        return []
    _, _, height, width = frame.shape
    sh, sw = regions.mask.shape
    device = frame.device
    h64 = np.asarray(homography, dtype=np.float64)
    h = torch.as_tensor(h64, dtype=torch.float32, device=device)
    inverse = torch.as_tensor(invert_homography(h64), dtype=torch.float32, device=device)
    # -> 1 x 6 x h x w (1 x 3 without a residual: the warp alone, as the CPU paste does for None)
    parts = [mask.reshape(1, sh, sw), flow] + ([] if residual is None else [residual])
    planes = torch.cat(parts, dim=0).unsqueeze(0)
    written: list[Box] = []
    for box in eye_boxes_in_frame(h64, regions, (height, width)):
        x0, y0, x1, y1 = box
        ys = torch.arange(y0, y1, dtype=torch.float32, device=device)
        xs = torch.arange(x0, x1, dtype=torch.float32, device=device)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        u, v = _apply(h, gx, gy)
        sampled = F.grid_sample(planes, _grid(u, v, sw, sh), mode="bilinear", padding_mode="zeros", align_corners=False)
        alpha = sampled[:, 0:1] * min(opacity, 1.0)
        # Same displacement form as the CPU paste: zero flow moves nothing, exactly.
        sx, sy = _apply(inverse, u + sampled[0, 1], v + sampled[0, 2])
        bx, by = _apply(inverse, u, v)
        grid = _grid(gx + (sx - bx), gy + (sy - by), width, height)
        warped = F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=False)
        corrected = warped if residual is None else warped + sampled[:, 3:6] * 255.0
        original = frame[:, :, y0:y1, x0:x1]
        blended = torch.round(original + alpha * (corrected - original)).clamp(0.0, 255.0)
        out[:, :, y0:y1, x0:x1] = torch.where(alpha > 0.0, blended, original)
        written.append(box)
    return written


def boxes_to_host(out: Tensor, frame: NDArray[np.uint8], boxes: list[Box]) -> NDArray[np.uint8]:
    """A host copy of ``frame`` with the ``boxes`` of ``out`` (``1 x 3 x H x W`` on the device) copied in: only
    the changed pixels cross the bus."""
    result = frame.copy()
    for x0, y0, x1, y1 in boxes:
        patch = out[0, :, y0:y1, x0:x1].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
        result[y0:y1, x0:x1] = patch
    return result
