"""The torch strip cut and paste-back (for frames on a GPU) agree with the OpenCV ones the corrector uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from engine.runtime.face import FaceTracker
from engine.runtime.paste import make_eye_regions, paste_face
from engine.runtime.pose import PoseEstimator, camera_matrix
from engine.runtime.samples import fit_to_frame
from engine.runtime.strip_cut import cut_strip, frame_to_strip_homography
from engine.runtime.torch_geometry import (
    boxes_to_host,
    cut_strip_torch,
    face_crop,
    frame_to_tensor,
    paste_face_torch,
)
from tests.runtime.fakes import outside_boxes

Frame = NDArray[np.uint8]


def _homography(frame: Frame) -> NDArray[np.float64]:
    with FaceTracker(video=False) as tracker:
        landmarks = tracker.detect(frame)[0].points
    camera = camera_matrix(frame.shape[1], frame.shape[0])
    pose = PoseEstimator().estimate(landmarks, camera)
    assert pose is not None
    return frame_to_strip_homography(camera, pose)


@pytest.mark.parametrize(("name", "size"), [("grace_hopper", None), ("astronaut", (1280, 720))])
def test_torch_geometry_matches_opencv(name: str, size: tuple[int, int] | None, request: pytest.FixtureRequest) -> None:
    photo: Frame = request.getfixturevalue(name)
    frame = photo if size is None else fit_to_frame(photo, *size)
    homography = _homography(frame)
    frame_t = frame_to_tensor(frame, "cpu")
    assert frame_t.shape == (1, 3, frame.shape[0], frame.shape[1])

    # The strip: OpenCV interpolates in fixed point, so a few levels at most and a fraction of one on average.
    reference = cut_strip(frame, homography).astype(np.float32)
    strip = cut_strip_torch(frame_t, homography).permute(1, 2, 0).numpy() * 255.0
    assert np.abs(strip - reference).max() < 6.0
    assert np.abs(strip - reference).mean() < 0.5

    # The paste-back of the same network outputs.
    rng = np.random.default_rng(0)
    regions = make_eye_regions()
    flow = ((rng.random((2, 64, 256)) - 0.5) * 6.0).astype(np.float32)
    residual = ((rng.random((3, 64, 256)) - 0.5) * 0.2).astype(np.float32)
    expected = frame.copy()
    boxes = paste_face(expected, frame, homography, flow, residual, 0.8, regions)
    out_t = frame_t.clone()
    mask = torch.from_numpy(regions.mask).reshape(1, 1, 64, 256)
    torch_boxes = paste_face_torch(
        out_t, frame_t, homography, torch.from_numpy(flow), torch.from_numpy(residual), 0.8, regions, mask
    )
    assert torch_boxes == boxes
    got = boxes_to_host(out_t, frame, torch_boxes)
    diff = np.abs(got.astype(int) - expected)
    changed = expected != frame
    assert changed.mean() > 0.001, "the paste must change the eyes"
    assert diff.max() <= 6
    assert (diff > 1).mean() < 1e-3
    outside = outside_boxes(frame.shape, boxes)
    assert np.array_equal(got[outside], frame[outside])


def test_zero_outputs_paste_nothing(grace_hopper: Frame) -> None:
    homography = _homography(grace_hopper)
    regions = make_eye_regions()
    frame_t = frame_to_tensor(grace_hopper, "cpu")
    out_t = frame_t.clone()
    mask = torch.from_numpy(regions.mask).reshape(1, 1, 64, 256)
    boxes = paste_face_torch(
        out_t, frame_t, homography, torch.zeros(2, 64, 256), torch.zeros(3, 64, 256), 1.0, regions, mask
    )
    assert len(boxes) == 2
    assert np.array_equal(boxes_to_host(out_t, grace_hopper, boxes), grace_hopper)
    assert (
        paste_face_torch(
            out_t, frame_t, homography, torch.ones(2, 64, 256), torch.zeros(3, 64, 256), 0.0, regions, mask
        )
        == []
    )


def test_working_on_the_face_crop_equals_working_on_the_frame(astronaut: Frame) -> None:
    frame = fit_to_frame(astronaut, 1280, 720)
    homography = _homography(frame)
    (x0, y0, x1, y1), to_strip = face_crop(homography, frame.shape[:2])
    assert (x1 - x0) * (y1 - y0) < 0.1 * frame.shape[0] * frame.shape[1], "the crop is a small part of the frame"
    crop = frame[y0:y1, x0:x1]
    full_t, crop_t = frame_to_tensor(frame, "cpu"), frame_to_tensor(crop, "cpu")
    assert torch.allclose(cut_strip_torch(full_t, homography), cut_strip_torch(crop_t, to_strip), atol=1e-4)
    regions = make_eye_regions()
    mask = torch.from_numpy(regions.mask).reshape(1, 1, 64, 256)
    flow, residual = torch.full((2, 64, 256), 2.0), torch.full((3, 64, 256), 0.05)
    full_out, crop_out = full_t.clone(), crop_t.clone()
    full_boxes = paste_face_torch(full_out, full_t, homography, flow, residual, 1.0, regions, mask)
    crop_boxes = paste_face_torch(crop_out, crop_t, to_strip, flow, residual, 1.0, regions, mask)
    assert [(a + x0, b + y0, c + x0, d + y0) for a, b, c, d in crop_boxes] == full_boxes
    stitched = frame.copy()
    stitched[y0:y1, x0:x1] = boxes_to_host(crop_out, crop, crop_boxes)
    assert np.abs(stitched.astype(int) - boxes_to_host(full_out, frame, full_boxes)).max() <= 1
