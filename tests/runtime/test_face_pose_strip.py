"""Frame -> landmarks -> head pose -> strip, on real photos."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from skimage import data

from engine.runtime.face import EYE_CORNERS, IRIS_CENTRES, NUM_LANDMARKS, FaceTracker
from engine.runtime.pose import HeadPose, PoseEstimator, camera_matrix
from engine.runtime.strip_cut import cut_strip, frame_to_strip_homography
from engine.strip import DEFAULT_EYE_MODEL, DEFAULT_STRIP, apply_homography, invert_homography, strip_homography


@pytest.fixture(scope="module")
def tracker() -> Iterator[FaceTracker]:
    with FaceTracker(max_faces=2, video=False) as t:
        yield t


def _expected_eye_centres() -> NDArray[np.float64]:
    """Where the model's eyeball centres project into the strip, in OpenCV pixel coordinates."""
    centres = torch.from_numpy(DEFAULT_EYE_MODEL.eyeball_centres() + np.array([0.0, 0.0, DEFAULT_STRIP.distance_mm]))
    return DEFAULT_STRIP.project(centres).numpy() - 0.5


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_landmarks_pose_and_strip_on_a_real_face(
    name: str, tracker: FaceTracker, request: pytest.FixtureRequest
) -> None:
    frame: NDArray[np.uint8] = request.getfixturevalue(name)
    faces = tracker.detect(frame)
    assert len(faces) == 1
    points = faces[0].points
    assert points.shape == (NUM_LANDMARKS, 2)
    h, w = frame.shape[:2]
    assert points[:, 0].min() >= 0
    assert points[:, 0].max() < w
    # Image order of the corners: 33 (image left) ... 263 (image right).
    xs = points[list(EYE_CORNERS), 0]
    assert np.all(np.diff(xs) > 0)
    assert np.array_equal(faces[0].irises(), points[list(IRIS_CENTRES)])
    assert faces[0].irises()[0, 0] < faces[0].irises()[1, 0]  # the image-left eye first
    # each iris sits between its eye's corners, and an eye is a few per cent of the image across
    for eye in range(2):
        assert xs[2 * eye] < faces[0].irises()[eye, 0] < xs[2 * eye + 1]
    assert 0.02 * w < faces[0].eye_width() < 0.2 * w

    camera = camera_matrix(w, h)
    pose = PoseEstimator().estimate(points, camera)
    assert pose is not None
    assert pose.angle_from_camera_deg() < 25.0  # both photos face the camera
    assert 250.0 < pose.centre[2] < 1500.0
    assert np.allclose(pose.rotation @ pose.rotation.T, np.eye(3), atol=1e-9)

    homography = frame_to_strip_homography(camera, pose)
    iris = apply_homography(homography, points[list(IRIS_CENTRES)])
    # Both irises land within a few strip pixels of the model's eye centres (the strip is centred on the eyes).
    assert np.abs(iris - _expected_eye_centres()).max() < 10.0, iris
    strip = cut_strip(frame, homography)
    assert strip.shape == (DEFAULT_STRIP.height, DEFAULT_STRIP.width, 3)
    assert strip.std() > 15.0
    # The iris is darker than the strip around it.
    for x, y in iris:
        dark = strip[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].mean()
        assert dark < strip.mean()


def test_no_face_in_a_blank_frame_or_a_landscape(tracker: FaceTracker) -> None:
    assert tracker.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert tracker.detect(np.ascontiguousarray(data.rocket())) == []


def test_tracker_rejects_bad_frames(tracker: FaceTracker) -> None:
    with pytest.raises(ValueError, match="uint8"):
        tracker.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="max_faces"):
        FaceTracker(max_faces=0)


def test_cut_strip_matches_a_full_frame_warp_for_a_small_face(grace_hopper: NDArray[np.uint8]) -> None:
    import cv2

    # A homography that samples the frame about 1:1 (no shrink): the cropped warp equals a full-frame warp.
    homography = np.array([[1.0, 0.05, -150.0], [-0.02, 1.0, -160.0], [0.0, 0.0, 1.0]])
    full = cv2.warpPerspective(
        grace_hopper, homography, (256, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    assert np.abs(cut_strip(grace_hopper, homography).astype(int) - full).max() <= 1
    assert np.allclose(invert_homography(homography) @ homography, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_first_fit_and_tracked_fits_agree(name: str, tracker: FaceTracker, request: pytest.FixtureRequest) -> None:
    # The face model is nearly flat, so a single fit can land on a solution mirrored in pitch. The first fit must
    # pick the one a tracked face keeps (with the old anthropometric model the astronaut's came out at -26° in
    # one mode and +26° in the other, and both photos' heads about 20° too far up).
    frame: NDArray[np.uint8] = request.getfixturevalue(name)
    points = tracker.detect(frame)[0].points
    camera = camera_matrix(frame.shape[1], frame.shape[0])
    estimator = PoseEstimator()
    first = estimator.estimate(points, camera)
    assert first is not None
    pose = first
    rng = np.random.default_rng(0)
    for _ in range(20):  # landmark jitter as from a tracker, each fit starting from the last
        tracked = estimator.estimate(points + rng.normal(0.0, 0.5, points.shape), camera, pose)
        assert tracked is not None
        pose = tracked
    first_pitch, tracked_pitch = first.normalised_pitch_yaw()[0], pose.normalised_pitch_yaw()[0]
    # Same solution (the mirrored one is 40-50° away); pitch itself is weakly constrained by 0.5 px of jitter.
    assert abs(np.degrees(first_pitch - tracked_pitch)) < 10.0
    assert abs(np.degrees(first_pitch)) < 20.0  # both photos face the camera, within the corrector's head gate


def test_the_runtime_homography_is_the_shared_strip_homography() -> None:
    """The float version the runtime uses per frame equals :func:`engine.strip.strip_homography` (torch)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        rotation, _ = cv2.Rodrigues(rng.normal(0.0, 0.3, 3))
        pose = HeadPose(np.asarray(rotation, np.float64), rng.uniform([-200, -150, 300], [200, 150, 1500]))
        camera = camera_matrix(int(rng.integers(320, 1920)), int(rng.integers(240, 1080)), rng.uniform(0.7, 1.5))
        expected = strip_homography(
            torch.from_numpy(camera), torch.from_numpy(pose.centre), torch.from_numpy(pose.rotation)
        ).numpy()
        actual = frame_to_strip_homography(camera, pose)
        assert np.allclose(actual, expected, rtol=1e-9, atol=1e-12)
