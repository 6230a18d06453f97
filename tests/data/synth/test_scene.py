"""The renderer's labels are geometrically right: pupils move where the camera model says, lids follow gaze."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch

from engine.data.synth.sampler import SynthConfig, SynthRenderer
from engine.data.synth.scene import eye_layout
from engine.strip import DEFAULT_EYE_MODEL, pitch_yaw_to_vector, rotation_from_pitch_yaw
from tests.data.synth.helpers import plain_subject, render_clean, scene_for


@pytest.fixture(scope="module")
def renderer() -> SynthRenderer:
    return SynthRenderer(SynthConfig(), "cpu")


def _pupil_centroids(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Measured pupil centres (x, y) per eye: centroid of the largest dark blob on the visible eyeball."""
    lum = image.mean(0).numpy()
    visible = mask[0].numpy() > 0.9
    w = lum.shape[1]
    out = []
    for lo, hi in ((0, w // 2), (w // 2, w)):
        part = lum[:, lo:hi]
        seen = part[visible[:, lo:hi]]
        darkest, median = float(seen.min()), float(np.median(seen))
        dark = (visible[:, lo:hi] & (part < darkest + 0.3 * (median - darkest))).astype(np.uint8)
        count, _labels, stats, centroids = cv2.connectedComponentsWithStats(dark, connectivity=8)
        if count < 2:
            raise AssertionError("no pupil found")
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        cx, cy = centroids[best]
        out.append(torch.tensor([cx + 0.5 + lo, cy + 0.5], dtype=torch.float32))
    return torch.stack(out)


def _predicted_pupils(renderer: SynthRenderer, app_subject: int, gaze_deg: tuple[float, float]) -> torch.Tensor:
    """Where the camera model puts the pupil centres: eyeballs turned to the fixation point, projected."""
    app = plain_subject(renderer, app_subject, 1)
    lay = eye_layout(app)
    gaze = torch.deg2rad(torch.tensor([gaze_deg]))
    target = 600.0 * pitch_yaw_to_vector(gaze)  # head frame = camera axes for a frontal head
    axis = target.unsqueeze(1) - lay.centres
    axis = axis / axis.norm(dim=-1, keepdim=True)
    depth = torch.sqrt(lay.radius**2 - app.iris_radius**2).view(1, 1, 1)
    points = lay.centres + axis * depth
    rot = rotation_from_pitch_yaw(torch.zeros(1, 2))
    cam = torch.einsum("bij,bej->bei", rot, points) + torch.tensor([0.0, 0.0, renderer.config.geometry.distance_mm])
    return renderer.config.geometry.project(cam)[0]


def test_pupils_move_opposite_ways_by_the_predicted_amount(renderer: SynthRenderer) -> None:
    subject = 12
    app = plain_subject(renderer, subject, 2)
    strips, out = render_clean(renderer, app, scene_for([(0.0, 20.0), (0.0, -20.0)]))
    measured = torch.stack([_pupil_centroids(strips.image[i], strips.mask[i]) for i in range(2)])
    predicted = torch.stack([_predicted_pupils(renderer, subject, g) for g in ((0.0, 20.0), (0.0, -20.0))])
    # the renderer's own pupil label agrees with the independent prediction
    torch.testing.assert_close(out.pupil_px, predicted, atol=1e-3, rtol=0)
    # positive yaw looks toward the image left: pupils left of where they are at negative yaw
    shift_measured = measured[0, :, 0] - measured[1, :, 0]
    shift_predicted = predicted[0, :, 0] - predicted[1, :, 0]
    assert (shift_measured < -5).all()
    torch.testing.assert_close(shift_measured, shift_predicted, atol=1.0, rtol=0.08)
    # and each measured pupil lies where the model projects it
    torch.testing.assert_close(measured, predicted, atol=1.5, rtol=0)


def test_vertical_gaze_moves_pupils_vertically(renderer: SynthRenderer) -> None:
    app = plain_subject(renderer, 40, 2)
    strips, out = render_clean(renderer, app, scene_for([(15.0, 0.0), (-15.0, 0.0)]))
    up = _pupil_centroids(strips.image[0], strips.mask[0])
    down = _pupil_centroids(strips.image[1], strips.mask[1])
    assert (up[:, 1] < down[:, 1] - 3).all()
    torch.testing.assert_close(up, out.pupil_px[0], atol=1.5, rtol=0)


def _upper_lid_row(mask: torch.Tensor, column: int) -> float:
    """First row from the top where the eyeball is visible in a column."""
    rows = (mask[0, :, column] > 0.5).nonzero(as_tuple=True)[0]
    return float(rows.min())


def test_looking_down_lowers_the_upper_lid(renderer: SynthRenderer) -> None:
    app = plain_subject(renderer, 77, 3)
    strips, out = render_clean(renderer, app, scene_for([(10.0, 0.0), (0.0, 0.0), (-25.0, 0.0)]))
    rows = []
    for i in range(3):
        col = int(out.pupil_px[i, 0, 0])
        rows.append(_upper_lid_row(strips.mask[i], col))
    assert rows[0] < rows[1] < rows[2]
    assert rows[2] - rows[1] >= 2
    assert out.openness[0] > out.openness[1] > out.openness[2]


def test_closed_eyes_hide_the_eyeball_and_are_labelled(renderer: SynthRenderer) -> None:
    app = plain_subject(renderer, 5, 2)
    open_strips, _ = render_clean(renderer, app, scene_for([(0.0, 0.0)] * 2, blink=1.0))
    closed_strips, out = render_clean(renderer, app, scene_for([(0.0, 0.0)] * 2, blink=0.02))
    assert open_strips.mask.sum() > 200
    assert closed_strips.mask.sum() < 0.05 * open_strips.mask.sum()
    assert bool(closed_strips.closed.all())
    assert float(out.openness.max()) < 0.1


def test_head_pose_changes_the_view_not_the_gaze_label(renderer: SynthRenderer) -> None:
    app = plain_subject(renderer, 9, 2)
    scene = scene_for([(0.0, 0.0), (0.0, 0.0)], head_deg=[(0.0, 0.0), (0.0, 20.0)])
    strips, out = render_clean(renderer, app, scene)
    torch.testing.assert_close(strips.gaze[0], strips.gaze[1])
    # turning the head foreshortens the distance between the eyes by about cos(yaw)
    spread = out.pupil_px[:, 1, 0] - out.pupil_px[:, 0, 0]
    assert abs(float(spread[1] / spread[0]) - math.cos(math.radians(20.0))) < 0.03
    assert (strips.image[0] - strips.image[1]).abs().mean() > 0.02


def test_eye_layout_of_the_mean_subject_is_the_shared_eye_model(renderer: SynthRenderer) -> None:
    # The renderer builds each subject's eyes in torch and the runtime fits landmarks to engine.strip.EyeModel;
    # a drift between the two constructions would show up as a constant gaze offset on real faces.
    model = DEFAULT_EYE_MODEL
    app = dataclasses.replace(
        plain_subject(renderer, 12, 1),
        ipd=torch.tensor([model.ipd_mm]),
        eyeball_radius=torch.tensor([model.eyeball_radius_mm]),
        shell_axes=torch.tensor([model.shell_axes_mm]),
        nasal_uv=torch.tensor([model.nasal_corner_uv]),
        temporal_uv=torch.tensor([model.temporal_corner_uv]),
    )
    centres = eye_layout(app).centres[0].double().numpy()
    np.testing.assert_allclose(centres, model.eyeball_centres(), atol=1e-4)
