"""Backward warping of an image by a dense flow field expressed in strip pixels.

Convention: ``flow[:, 0]`` is the horizontal (x, to the image right) and ``flow[:, 1]`` the vertical (y, down)
displacement, in pixels *of the normalised strip* (:class:`engine.strip.StripGeometry`). The output pixel at
position p samples the input at ``p + flow(p)`` (a backward warp, so every output pixel is defined).

Keeping the unit fixed to strip pixels makes the field resolution-independent: the runtime can upsample the
strip-resolution flow bilinearly to the full-resolution eye region (whose extent is the strip's field of
view, so one strip pixel spans ``image_width / strip_width`` image pixels) *without rescaling its values*, and
pass ``strip_size`` so this module converts the displacement to the image's own coordinates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.model.guards import check_flow


def upsample_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Resample a flow B x 2 x h x w to ``size`` = (H, W) bilinearly; the values (strip pixels) are kept."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be B x 2 x h x w, got shape {tuple(flow.shape)}")
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def warp(image: Tensor, flow: Tensor, strip_size: tuple[int, int]) -> Tensor:
    """Backward-warp ``image`` B x C x H x W by ``flow`` B x 2 x H x W given in strip pixels.

    ``strip_size`` = (strip height, strip width) defines the unit of ``flow``; ``image`` may have any
    resolution as long as it covers the strip's field of view (for the strip itself, H, W = ``strip_size``).
    Sampling is bilinear with border padding, ``align_corners=False`` (pixel centres at +0.5, the convention
    of :mod:`engine.strip`).
    """
    check_flow(flow, image)
    strip_h, strip_w = strip_size
    if strip_h <= 0 or strip_w <= 0:
        raise ValueError(f"strip_size must be positive, got {strip_size}")
    _, _, h, w = image.shape
    # Identity grid in grid_sample's normalised coordinates: pixel i's centre is at (2i + 1) / n - 1.
    ys = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h, dtype=image.dtype, device=image.device)
    xs = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w, dtype=image.dtype, device=image.device)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # -> H x W x 2 (x, y)
    # One strip pixel is 2 / strip_w normalised units across, whatever the image resolution. Python scalars, not
    # a tensor built from a list: that would be a host-to-device copy, which a CUDA graph capture refuses.
    step = torch.stack((flow[:, 0] * (2.0 / strip_w), flow[:, 1] * (2.0 / strip_h)), dim=-1)  # -> B x H x W x 2
    grid = base.unsqueeze(0) + step
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def sample_flow(flow: Tensor, points: Tensor) -> Tensor:
    """Bilinear samples of ``flow`` B x 2 x H x W (at strip resolution) at ``points`` B x K x 2, (x, y) strip
    pixels with centres at +0.5 -> B x K x 2: the displacement the backward warp applies at those points."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be B x 2 x H x W, got shape {tuple(flow.shape)}")
    if points.ndim != 3 or points.shape[0] != flow.shape[0] or points.shape[2] != 2:
        raise ValueError(f"points must be B x K x 2 with B = {flow.shape[0]}, got shape {tuple(points.shape)}")
    h, w = flow.shape[-2:]
    scale = points.new_tensor([2.0 / w, 2.0 / h])
    grid = (points * scale - 1.0).unsqueeze(1)  # -> B x 1 x K x 2, grid_sample's normalised coordinates
    sampled = F.grid_sample(flow, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[:, :, 0].transpose(1, 2)  # -> B x K x 2


# How near (strip pixels) a fold must lie to an eye feature to count as at it: the iris radius is 4-6 px, so a fold
# this close doubles or smears an iris or lid edge. Shared by the fold reading (engine.eval.warp_eval.folds_near) and
# the eye-fold loss (engine.train.losses.eye_cells), so the loss guards what the reading counts.
FOLD_REACH_PX = 4


def flow_jacobian_det(flow: Tensor) -> Tensor:
    """Determinant of the Jacobian of the sampling map ``p -> p + flow(p)`` of a backward warp, by forward
    differences between neighbouring pixels: B x 2 x H x W -> B x (H-1) x (W-1), one value per pixel square.

    1 where the warp translates rigidly, between 0 and 1 where it squeezes the source, above 1 where it
    stretches it, and at or below 0 where it **folds**: the output shows a stretch of the source twice (once
    mirrored), so edges double or smear. A fold-free warp keeps it above 0 everywhere.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be B x 2 x H x W, got shape {tuple(flow.shape)}")
    if flow.shape[2] < 2 or flow.shape[3] < 2:
        raise ValueError(f"flow needs at least 2 x 2 pixels, got {tuple(flow.shape[2:])}")
    fx, fy = flow[:, 0], flow[:, 1]
    corner_x, corner_y = fx[:, :-1, :-1], fy[:, :-1, :-1]
    dx_dx = 1.0 + fx[:, :-1, 1:] - corner_x  # d(x + fx)/dx
    dx_dy = fx[:, 1:, :-1] - corner_x  # d(x + fx)/dy
    dy_dx = fy[:, :-1, 1:] - corner_y  # d(y + fy)/dx
    dy_dy = 1.0 + fy[:, 1:, :-1] - corner_y  # d(y + fy)/dy
    return dx_dx * dy_dy - dx_dy * dy_dx  # -> B x (H-1) x (W-1)
