"""The paste-back (``engine/runtime/paste.py``) against a straightforward reference, and how patches are written."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from engine.runtime.paste import Patch, eye_boxes_in_frame, face_patches, make_eye_regions, paste_face, write_patches
from engine.runtime.pose import HeadPose, camera_matrix
from engine.runtime.strip_cut import frame_to_strip_homography
from engine.strip import invert_homography

Frame = NDArray[np.uint8]


def _homography(yaw_deg: float) -> NDArray[np.float64]:
    """A face 60 cm in front of a 1280 x 720 camera, a little off centre, turned by ``yaw_deg``."""
    rotation, _ = cv2.Rodrigues(np.array([0.05, np.radians(yaw_deg), 0.03]))
    pose = HeadPose(np.asarray(rotation, np.float64), np.array([40.0, -20.0, 600.0]))
    return frame_to_strip_homography(camera_matrix(1280, 720), pose)


def _reference_paste(frame: Frame, homography: NDArray[np.float64], flow: NDArray[np.float32]) -> Frame:
    """The paste written the long way, in float64: project each pixel into the strip, add the flow there, project
    the source point back, and blend the resampled frame in with the sampled eye mask."""
    regions = make_eye_regions()
    inverse = invert_homography(homography)
    out = frame.copy()
    for x0, y0, x1, y1 in eye_boxes_in_frame(homography, regions, frame.shape[:2]):
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))

        def project(h: NDArray[np.float64], x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
            w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
            return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w

        u, v = project(homography, gx, gy)
        planes = np.stack((regions.mask, flow[0], flow[1]), axis=-1).astype(np.float32)
        sampled = cv2.remap(planes, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR)
        src_x, src_y = project(inverse, u + sampled[:, :, 1], v + sampled[:, :, 2])
        warped = cv2.remap(
            frame, src_x.astype(np.float32), src_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float64)
        alpha = sampled[:, :, :1].astype(np.float64)
        original = frame[y0:y1, x0:x1].astype(np.float64)
        out[y0:y1, x0:x1] = np.clip(np.rint(original + alpha * (warped - original)), 0, 255).astype(np.uint8)
    return out


@pytest.mark.parametrize("yaw_deg", [0.0, 20.0])
def test_the_paste_matches_the_long_way_to_one_level(astronaut: Frame, yaw_deg: float) -> None:
    frame = np.ascontiguousarray(cv2.resize(astronaut, (1280, 720)))
    homography = _homography(yaw_deg)
    rng = np.random.default_rng(3)
    flow = cv2.GaussianBlur(rng.normal(0.0, 6.0, (64, 256, 2)).astype(np.float32), (0, 0), 4.0).transpose(2, 0, 1)
    flow = np.ascontiguousarray(flow)
    out = frame.copy()
    boxes = paste_face(out, frame, homography, flow, None, 1.0, make_eye_regions())
    expected = _reference_paste(frame, homography, flow)
    assert len(boxes) == 2
    changed = np.any(expected != frame, axis=2)
    assert changed.sum() > 1000, "the flow must move a fair part of the eyes for this test to mean anything"
    diff = np.abs(out.astype(int) - expected)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.001


def test_a_zero_flow_pastes_nothing_new(astronaut: Frame) -> None:
    frame = np.ascontiguousarray(cv2.resize(astronaut, (1280, 720)))
    out = frame.copy()
    boxes = paste_face(out, frame, _homography(10.0), np.zeros((2, 64, 256), np.float32), None, 1.0, make_eye_regions())
    assert boxes
    assert np.array_equal(out, frame)


def test_patches_hold_the_original_where_the_mask_does_not_reach(astronaut: Frame) -> None:
    frame = np.ascontiguousarray(cv2.resize(astronaut, (1280, 720)))
    flow = np.full((2, 64, 256), 3.0, np.float32)
    patches = face_patches(frame, _homography(0.0), flow, None, 1.0, make_eye_regions())
    assert len(patches) == 2
    for patch in patches:
        x0, y0, x1, y1 = patch.box
        assert patch.reached.any()
        assert not patch.reached.all()
        assert np.array_equal(patch.pixels[~patch.reached], frame[y0:y1, x0:x1][~patch.reached])
        assert np.any(patch.pixels[patch.reached] != frame[y0:y1, x0:x1][patch.reached])


def test_overlapping_patches_keep_the_earlier_one_where_the_later_does_not_reach() -> None:
    out = np.zeros((10, 10, 3), np.uint8)
    reached = np.zeros((6, 6), bool)
    reached[3:, 3:] = True
    first = Patch((0, 0, 6, 6), np.full((6, 6, 3), 100, np.uint8), np.ones((6, 6), bool))
    second = Patch((3, 3, 9, 9), np.repeat(np.where(reached, 200, 0).astype(np.uint8)[:, :, None], 3, axis=2), reached)
    write_patches(out, [first, second])
    assert (out[:3, :3] == 100).all()
    assert (out[3:6, 3:6] == 100).all()
    assert (out[6:9, 6:9] == 200).all()
    assert (out[9] == 0).all()
    assert (out[:, 9] == 0).all()
    with pytest.raises(ValueError, match="does not fit"):
        write_patches(np.zeros((4, 4, 3), np.uint8), [first])
