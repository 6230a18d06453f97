"""What the shipped network does to real faces (the package photos), measured with MediaPipe on the output.

These tests need the shipped weights (``engine/weights/redirector.pt`` and its ONNX export); without them they
fail with the missing path, because a corrector without trained weights cannot show any of this.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from engine.runtime.backends.base import Backend
from engine.runtime.backends.select import load_model, select_backend
from engine.runtime.corrector import Corrector, correct_still
from engine.runtime.face import FaceTracker
from engine.runtime.settings import Settings
from tests.runtime.fakes import outside_boxes

Frame = NDArray[np.uint8]
PHOTOS = ["grace_hopper", "astronaut"]


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "mirror"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The shipped network in ONNX Runtime, alone and as the mirror ensemble: both must pass every test here."""
    return select_backend("onnxruntime", load_model(None), cpu_threads=2, mirror=request.param)


@pytest.fixture(scope="module")
def measure() -> Iterator[FaceTracker]:
    """An independent MediaPipe instance (photo mode) that measures the corrected output."""
    with FaceTracker(video=False) as tracker:
        yield tracker


def _iris(tracker: FaceTracker, frame: Frame) -> tuple[NDArray[np.float64], float]:
    """Iris centres ``[2, 2]`` of the one face in ``frame`` and the mean eye width (corner to corner) in pixels."""
    faces = tracker.detect(frame)
    assert len(faces) == 1
    return faces[0].irises(), faces[0].eye_width()


def _correct(backend: Backend, frame: Frame, pitch: float, yaw: float) -> tuple[Frame, list[tuple[int, int, int, int]]]:
    out, telemetry = correct_still(backend, frame, Settings(target_pitch_deg=pitch, target_yaw_deg=yaw))
    assert len(telemetry.faces) == 1
    return out, telemetry.faces[0].eye_boxes


def _psnr(a: Frame, b: Frame) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("name", PHOTOS)
def test_down_then_up_moves_the_irises_down_then_up(
    name: str, backend: Backend, measure: FaceTracker, request: pytest.FixtureRequest
) -> None:
    frame: Frame = request.getfixturevalue(name)
    down, _ = _correct(backend, frame, -10.0, 0.0)
    up, _ = _correct(backend, frame, 10.0, 0.0)
    iris_down, width = _iris(measure, down)
    iris_up, _ = _iris(measure, up)
    # Image y grows downward. A 20-degree swing of an eyeball (radius ~ 0.5 eye widths) moves the iris by about
    # 0.17 eye widths; ask for a quarter of that in each eye, well above MediaPipe's jitter on a still photo.
    shift = (iris_down[:, 1] - iris_up[:, 1]) / width
    assert np.all(shift > 0.04), f"iris y (down - up) in eye widths: {shift}"
    # And the irises move vertically, not sideways.
    assert np.all(np.abs(iris_down[:, 0] - iris_up[:, 0]) / width < np.abs(shift))


@pytest.mark.parametrize("name", PHOTOS)
def test_left_then_right_moves_the_irises_sideways(
    name: str, backend: Backend, measure: FaceTracker, request: pytest.FixtureRequest
) -> None:
    frame: Frame = request.getfixturevalue(name)
    # Positive yaw is toward the image left (the subject's right).
    left, _ = _correct(backend, frame, 0.0, 15.0)
    right, _ = _correct(backend, frame, 0.0, -15.0)
    iris_left, width = _iris(measure, left)
    iris_right, _ = _iris(measure, right)
    shift = (iris_right[:, 0] - iris_left[:, 0]) / width
    assert np.all(shift > 0.04), f"iris x (right - left) in eye widths: {shift}"


@pytest.mark.parametrize("name", PHOTOS)
def test_a_face_looking_at_the_camera_comes_back_nearly_unchanged(
    name: str, backend: Backend, request: pytest.FixtureRequest
) -> None:
    frame: Frame = request.getfixturevalue(name)
    out, boxes = _correct(backend, frame, 0.0, 0.0)
    assert _psnr(out, frame) >= 35.0
    outside = outside_boxes(frame.shape, boxes)
    assert np.array_equal(out[outside], frame[outside])


@pytest.mark.parametrize("name", PHOTOS)
def test_a_still_video_gives_a_still_output(name: str, backend: Backend, request: pytest.FixtureRequest) -> None:
    """A still camera: the same photo with fresh sensor noise in every frame (sigma 2 levels)."""
    frame: Frame = request.getfixturevalue(name)
    rng = np.random.default_rng(0)
    inputs, outputs, boxes = [], [], set()
    with Corrector(backend, video=True) as corrector:
        for index in range(40):
            noisy = np.clip(frame + rng.normal(0.0, 2.0, frame.shape), 0, 255).astype(np.uint8)
            out, telemetry = corrector.process(noisy, Settings(), timestamp_s=index / 30.0)
            assert len(telemetry.faces) == 1
            if index >= 15:  # after the strength ramp and the filters have settled
                inputs.append(noisy)
                outputs.append(out)
                boxes.update(telemetry.faces[0].eye_boxes)
    region = ~outside_boxes(frame.shape, sorted(boxes))
    # Frame-to-frame change inside the eye regions: the output may change no more than the input does.
    change_in = _mean_change(inputs, region)
    change_out = _mean_change(outputs, region)
    assert change_out <= 1.1 * change_in, (change_out, change_in)
    # And it does not drift: the last corrected frame is the first one up to that noise.
    drift = np.abs(outputs[-1][region].astype(float) - outputs[0][region]).mean()
    assert drift <= 1.1 * change_in, (drift, change_in)


def _mean_change(frames: list[Frame], region: NDArray[np.bool_]) -> float:
    """Mean absolute change between successive frames inside ``region``."""
    return float(np.mean([np.abs(b[region].astype(float) - a[region]).mean() for a, b in itertools.pairwise(frames)]))
