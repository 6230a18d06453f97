"""A network-free reading of the gaze a warp shows: where the flow puts the source's pupils.

The judge of ``mirada eval`` is a network (estimator B), and its own error on true renders (about 3.2° of gaze,
docs/MODEL.md) is above the 2.5° target: it cannot show a redirector meeting it. On synthetic pairs this module
reads the output's gaze without any network. The renderer knows where each source pupil is (``pupil_px``). The
decoder's flow is a backward warp: the output pixel at ``x`` shows the source at ``x + flow(x)``. So the output shows
the source's pupil at the ``x`` where ``x + flow(x) = p`` (:func:`follow_points`). The gaze whose render puts the
pupils there, the subject, head pose and fixation distance held at the target's, is the output's gaze by this
reading (:func:`gaze_from_pupils`, on the geometry of :func:`engine.data.synth.scene.pupil_centres_px`).

What it reads and what it does not:

- It reads the **warp**, which is what the corrector pastes by default (``Settings.residual_gain = 0``), not the
  colour residual the network adds to its strip output. A residual that paints the iris somewhere else is not seen.
- It reads the **pupil centre**, from both eyes at once (least squares over four coordinates): the iris disc
  moves with it. Lids, which follow the gaze pitch in our renders, are not read.
- Its floor is zero: on a true render (identity flow, the render's own scene) it returns the render's gaze to
  the solver's tolerance. Spectacle lenses bend the path from the pupil to the camera, which the geometry ignores,
  so it is exact for subjects without spectacles only; callers report wearers apart.
- It needs the target's head pose to be the source's (a corrector moves only the gaze): the pupils alone cannot
  tell a head error from a gaze error. Pairs drawn with ``SynthConfig(pair_same_head=True)`` are such pairs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
from torch import Tensor

from engine.data.synth.scene import Scene, pupil_centres_px
from engine.data.synth.subject import Appearance
from engine.model.warp import sample_flow
from engine.strip import StripGeometry


class FollowedPoints(NamedTuple):
    """Output positions B x K x 2 (x, y strip pixels) and how far ``x + flow(x)`` misses the source point (B x K)."""

    points: Tensor
    miss_px: Tensor


def _check_points(points: Tensor, batch: int, name: str) -> None:
    if points.ndim != 3 or points.shape[0] != batch or points.shape[2] != 2:
        raise ValueError(f"{name} must be B x K x 2 with B = {batch}, got shape {tuple(points.shape)}")


def _jacobian(flow: Tensor, points: Tensor, step: float = 0.5) -> Tensor:
    """The Jacobian of ``x -> x + flow(x)`` at ``points`` B x K x 2 by central differences, B x K x 2 x 2."""
    columns = []
    for k in range(2):
        delta = torch.zeros_like(points)
        delta[..., k] = step
        ahead, behind = points + delta, points - delta
        columns.append((ahead + sample_flow(flow, ahead) - behind - sample_flow(flow, behind)) / (2 * step))
    return torch.stack(columns, dim=-1)


def follow_points(flow: Tensor, points: Tensor, iterations: int = 30, max_step_px: float = 4.0) -> FollowedPoints:
    """Where the backward warp by ``flow`` (B x 2 x H x W, strip pixels at strip resolution, the decoder's
    convention: the output at ``x`` samples the input at ``x + flow(x)``) shows the input's ``points`` B x K x 2.

    Solves ``x + flow(x) = p`` by Newton's method from ``x = p`` (each step at most ``max_step_px``). The simpler
    iteration ``x <- p - flow(x)`` fails where the flow stretches or shears by a pixel per pixel or more, which
    the shipped decoder's fields do around some pupils. ``miss_px`` says how well each point was solved: where
    the field folds (a point shown twice, or nowhere) it stays large, and a caller should drop those points.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be B x 2 x H x W, got shape {tuple(flow.shape)}")
    _check_points(points, flow.shape[0], "points")
    if iterations < 1 or max_step_px <= 0:
        raise ValueError(f"iterations and max_step_px must be positive, got {iterations} and {max_step_px}")
    x = points
    for _ in range(iterations):
        residual = x + sample_flow(flow, x) - points  # -> B x K x 2
        jac = _jacobian(flow, x)
        # a singular Jacobian (a fold) gets a plain fixed-point step instead of a solve
        ok = torch.linalg.det(jac).abs() > 1e-3
        safe = torch.where(ok[..., None, None], jac, torch.eye(2, dtype=jac.dtype, device=jac.device))
        step = torch.linalg.solve(safe, residual.unsqueeze(-1)).squeeze(-1)
        length = step.norm(dim=-1, keepdim=True)
        x = x - step * (max_step_px / length.clamp_min(max_step_px))
    miss = (x + sample_flow(flow, x) - points).norm(dim=-1)
    return FollowedPoints(x, miss)


def gaze_from_pupils(
    app: Appearance, scene: Scene, geometry: StripGeometry, pupils: Tensor, iterations: int = 8, step: float = 1e-3
) -> Tensor:
    """The gaze B x 2 (pitch, yaw; radians) whose render of ``scene`` puts the two pupil centres nearest (least
    squares, strip pixels) to ``pupils`` B x 2 x 2, everything but the gaze kept as in ``scene``.

    Gauss-Newton from ``scene.gaze``, with a central-difference Jacobian (``step`` radians): the pupils move
    smoothly with the gaze, so a few iterations suffice (the pupils are computed in float32: on true renders the
    gaze comes back to within 0.05°, which the tests check).
    """
    _check_points(pupils, len(scene), "pupils")
    if iterations < 1 or step <= 0:
        raise ValueError(f"iterations and step must be positive, got {iterations} and {step}")
    target = pupils.reshape(-1, 4).double()
    gaze = scene.gaze.double()

    def pupils_at(g: Tensor) -> Tensor:
        return pupil_centres_px(app, replace(scene, gaze=g.to(scene.gaze.dtype)), geometry).reshape(-1, 4).double()

    for _ in range(iterations):
        columns = []
        for k in range(2):
            delta = torch.zeros_like(gaze)
            delta[:, k] = step
            columns.append((pupils_at(gaze + delta) - pupils_at(gaze - delta)) / (2 * step))
        jac = torch.stack(columns, dim=-1)  # -> B x 4 x 2, pixels per radian
        residual = (target - pupils_at(gaze)).unsqueeze(-1)  # -> B x 4 x 1
        normal = jac.transpose(1, 2) @ jac  # -> B x 2 x 2
        gaze = gaze + torch.linalg.solve(normal, jac.transpose(1, 2) @ residual).squeeze(-1)
    return gaze.to(scene.gaze.dtype)


class WarpGaze(NamedTuple):
    """What :func:`warp_gaze` reads: the gaze B x 2 (radians), where the warp shows the two source pupils
    (B x 2 x 2 strip pixels) and the larger of their two misses (B, strip pixels; see :func:`follow_points`)."""

    gaze: Tensor
    pupils: Tensor
    miss_px: Tensor


def warp_gaze(app: Appearance, target: Scene, geometry: StripGeometry, source_pupils: Tensor, flow: Tensor) -> WarpGaze:
    """The gaze that a warp by ``flow`` shows, read from where it puts ``source_pupils`` B x 2 x 2, in the
    ``target`` scene (whose head pose must be the source's)."""
    followed = follow_points(flow, source_pupils)
    gaze = gaze_from_pupils(app, target, geometry, followed.points)
    return WarpGaze(gaze, followed.points, followed.miss_px.amax(dim=1))
