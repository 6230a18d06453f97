"""The network-free iris reading: points followed through a backward warp, the gaze from the pupil centres."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.data.synth.scene import pupil_centres_px
from engine.eval.iris import follow_points, gaze_from_pupils, warp_gaze
from engine.model.warp import warp
from engine.strip import StripGeometry, angular_error_deg

SMALL = SynthConfig(geometry=StripGeometry(height=32, width=128), pair_same_head=True)


@pytest.fixture(scope="module")
def rendered() -> tuple[SynthSampler, object, object, object]:
    sampler = SynthSampler(SMALL, Split.VAL, seed=3, batch_size=8)
    return (sampler, *sampler.render_pairs(0))


def test_pupils_from_the_geometry_are_where_the_renderer_put_them(rendered) -> None:  # type: ignore[no-untyped-def]
    sampler, _, source, target = rendered
    for side in (source, target):
        app = sampler.renderer.appearance(side.strips.subject)
        assert torch.allclose(pupil_centres_px(app, side.scene, SMALL.geometry), side.pupil_px, atol=1e-4)


def test_same_head_pairs_keep_the_head_and_draw_everything_else_as_before(rendered) -> None:  # type: ignore[no-untyped-def]
    _, batch, source, target = rendered
    assert torch.equal(batch.source.head, batch.target.head)
    assert torch.equal(source.scene.head, target.scene.head)
    limit = torch.tensor([math.radians(a) for a in SMALL.eye_in_head_deg])
    assert bool(((batch.target.gaze - batch.target.head).abs() <= limit + 1e-6).all())
    plain = SynthSampler(replace(SMALL, pair_same_head=False), Split.VAL, seed=3, batch_size=8).pairs(0)
    assert torch.equal(plain.source.image, batch.source.image)  # the same draws: only the target's head differs
    assert not torch.equal(plain.target.head, batch.target.head)


def test_following_a_translation_moves_points_back_by_it() -> None:
    flow = torch.zeros(2, 2, 16, 32)
    flow[:, 0], flow[:, 1] = 1.5, -0.75  # the output at x shows the input at x + (1.5, -0.75)
    points = torch.tensor([[[10.0, 8.0], [20.5, 4.25]], [[3.0, 3.0], [28.0, 12.0]]])
    followed = follow_points(flow, points)
    assert torch.allclose(followed.points, points - torch.tensor([1.5, -0.75]), atol=1e-5)
    assert float(followed.miss_px.max()) < 1e-5


def test_a_followed_point_is_where_the_warped_image_shows_it() -> None:
    torch.manual_seed(0)
    # a smooth flow of up to 3 px and an image with one bright dot at a known input point
    flow = F.interpolate(torch.randn(1, 2, 3, 5) * 1.5, size=(32, 64), mode="bicubic", align_corners=False)
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    dot = torch.tensor([30.2, 15.7])
    image = torch.exp(-((xs - dot[0]) ** 2 + (ys - dot[1]) ** 2) / 2.0).expand(1, 1, 32, 64)
    shown = warp(image, flow, (32, 64))[0, 0]
    followed = follow_points(flow, dot.view(1, 1, 2))
    assert float(followed.miss_px.max()) < 1e-3
    # the warped dot's centre of mass is where the point was followed to (to the blob's distortion)
    weight = shown / shown.sum()
    centre = torch.stack(((weight * xs).sum(), (weight * ys).sum()))
    assert float((centre - followed.points[0, 0]).norm()) < 0.25, (centre, followed.points)


def test_the_gaze_is_recovered_from_its_pupils_and_a_true_render_reads_its_own_gaze(rendered) -> None:  # type: ignore[no-untyped-def]
    sampler, batch, source, target = rendered
    app = sampler.renderer.appearance(batch.source.subject)
    # from the target's scene, the source's pupils read as (about) the source's gaze: only the fixation differs
    read = gaze_from_pupils(app, target.scene, SMALL.geometry, source.pupil_px)
    assert float(angular_error_deg(read, batch.source.gaze).max()) < 1.0
    # exactly, once the scene is the source's own
    read = gaze_from_pupils(app, source.scene, SMALL.geometry, source.pupil_px)
    assert float(angular_error_deg(read, batch.source.gaze).max()) < 0.05
    # a true render has no flow: the identity warp of the target reads the target's gaze
    identity = torch.zeros(8, 2, 32, 128)
    reading = warp_gaze(app, target.scene, SMALL.geometry, target.pupil_px, identity)
    assert float(angular_error_deg(reading.gaze, batch.target.gaze).max()) < 0.05
    assert float(reading.miss_px.max()) == 0.0
    # and the unwarped source reads about the source's gaze, far from the target's
    reading = warp_gaze(app, target.scene, SMALL.geometry, source.pupil_px, identity)
    moved = angular_error_deg(batch.source.gaze, batch.target.gaze)
    assert torch.allclose(angular_error_deg(reading.gaze, batch.target.gaze), moved, atol=1.0)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="flow"):
        follow_points(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="points"):
        follow_points(torch.zeros(2, 2, 4, 4), torch.zeros(1, 1, 2))
