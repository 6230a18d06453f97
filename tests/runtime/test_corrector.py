"""The corrector's contract on real photos, with stand-in networks whose outputs are known.

What a trained network does to the eyes is tested in ``test_corrector_trained.py``; here the network is a
:class:`FakeBackend` (constant flow, zero residual), so every expectation follows from the geometry alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.typing import NDArray

from engine.data.face_to_strip import pixels_per_strip_pixel
from engine.runtime.backends.base import NetOutputs
from engine.runtime.corrector import Corrector, batch_inputs, correct_still
from engine.runtime.face import IRIS_CENTRES, FaceTracker
from engine.runtime.settings import Mode, Settings
from tests.runtime.fakes import FakeBackend, outside_boxes

Frame = NDArray[np.uint8]


def _photo(frame: Frame) -> Corrector:
    return Corrector(FakeBackend(flow_xy=(0.0, 3.0)), video=False)


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_moving_the_eyes_changes_only_the_eye_regions(name: str, request: pytest.FixtureRequest) -> None:
    frame: Frame = request.getfixturevalue(name)
    before = frame.copy()
    with _photo(frame) as corrector:
        out, telemetry = corrector.process(frame, Settings())
    assert np.array_equal(frame, before), "the input frame must not be modified"
    assert len(telemetry.faces) == 1
    boxes = telemetry.faces[0].eye_boxes
    assert len(boxes) == 2
    # Both eye boxes lie inside the face and each one changed.
    x0, y0, x1, y1 = telemetry.faces[0].box
    for bx0, by0, bx1, by1 in boxes:
        assert x0 <= bx0 < bx1 <= x1
        assert y0 <= by0 < by1 <= y1
        assert np.abs(out[by0:by1, bx0:bx1].astype(int) - frame[by0:by1, bx0:bx1]).max() > 20
    outside = outside_boxes(frame.shape[:2], boxes)
    assert np.array_equal(out[outside], frame[outside]), "pixels outside the eye boxes must be bit-identical"
    # The eye boxes are small: a few percent of the frame at most.
    assert (~outside).mean() < 0.05


def test_correct_still_is_a_fresh_photo_corrector_each_time(grace_hopper: Frame) -> None:
    backend = FakeBackend(flow_xy=(0.0, 3.0))
    with Corrector(backend, video=False) as corrector:
        expected, expected_telemetry = corrector.process(grace_hopper, Settings())
        # a corrector that already saw a frame carries its track into the next one: its frame index moves on
        _, later = corrector.process(grace_hopper, Settings())
    assert later.frame_index == 1
    for _ in range(2):  # each call starts afresh, so repeated calls agree with a new corrector's first frame
        out, telemetry = correct_still(backend, grace_hopper, Settings())
        assert telemetry.frame_index == 0
        assert telemetry.faces[0].eye_boxes == expected_telemetry.faces[0].eye_boxes
        assert np.array_equal(out, expected)
    assert not np.array_equal(expected, grace_hopper)  # the flow moved something: the comparison is not vacuous


def test_zero_flow_and_residual_reproduce_the_frame_bit_for_bit(grace_hopper: Frame) -> None:
    with Corrector(FakeBackend(), video=False) as corrector:
        out, telemetry = corrector.process(grace_hopper, Settings())
    assert telemetry.faces[0].strength == 1.0
    assert np.array_equal(out, grace_hopper)


def test_residual_gain_scales_the_pasted_residual_inside_the_eye_boxes(grace_hopper: Frame) -> None:
    backend = FakeBackend(residual=0.2)  # zero flow: only the residual (x the mask of 0.5) can change pixels
    with Corrector(backend, video=False) as corrector:
        untouched, _ = corrector.process(grace_hopper, Settings())  # default gain 0: the warp alone
        lifted, telemetry = corrector.process(grace_hopper, Settings(residual_gain=1.0))
    assert np.array_equal(untouched, grace_hopper)
    boxes = telemetry.faces[0].eye_boxes
    outside = outside_boxes(grace_hopper.shape[:2], boxes)
    assert np.array_equal(lifted[outside], grace_hopper[outside])
    lift = lifted.astype(int) - grace_hopper
    assert lift.min() >= 0
    # The strongest lift, where the feathered eye mask is 1, is residual x network mask x 255 (unless clipped).
    assert abs(int(lift.max()) - round(0.2 * 0.5 * 255)) <= 1


def test_no_face_returns_the_input_itself() -> None:
    blank = np.full((240, 320, 3), 90, np.uint8)
    backend = FakeBackend(flow_xy=(2.0, 2.0))
    with Corrector(backend, video=False) as corrector:
        out, telemetry = corrector.process(blank, Settings())
    assert out is blank
    assert telemetry.faces == []
    assert backend.batches == [], "the network must not run without faces"


def test_modes_off_and_estimate_leave_the_frame_alone(grace_hopper: Frame) -> None:
    backend = FakeBackend(flow_xy=(0.0, 3.0), gaze_deg=(-4.0, 2.0))
    with Corrector(backend, video=False) as corrector:
        out, telemetry = corrector.process(grace_hopper, Settings(mode=Mode.OFF))
        assert out is grace_hopper
        assert telemetry.faces == []
        assert backend.batches == []
        out, telemetry = corrector.process(grace_hopper, Settings(mode=Mode.ESTIMATE))
    assert out is grace_hopper
    face = telemetry.faces[0]
    assert face.gaze_deg == pytest.approx((-4.0, 2.0), abs=1e-4)
    assert face.strength == 0.0
    assert face.eye_boxes == []
    assert backend.strengths == [[0.0]]


def test_closed_eyes_are_handed_through(grace_hopper: Frame, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.runtime.corrector as corrector_module

    # The photo's eyes are open; make the measured openness that of closed eyes (EAR 0.05).
    monkeypatch.setattr(corrector_module, "eye_openness", lambda points: (0.05, 0.05))
    with Corrector(FakeBackend(flow_xy=(0.0, 3.0)), video=False) as corrector:
        out, telemetry = corrector.process(grace_hopper, Settings())
    assert out is grace_hopper
    assert telemetry.faces[0].gates["blink"] == 0.0
    assert telemetry.faces[0].strength == 0.0


def test_a_blink_threshold_above_the_measured_openness_stops_the_correction(grace_hopper: Frame) -> None:
    with Corrector(FakeBackend(flow_xy=(0.0, 3.0)), video=False) as corrector:
        _, open_eyes = corrector.process(grace_hopper, Settings())
        threshold = min(open_eyes.faces[0].openness) + 0.01
        out, telemetry = corrector.process(grace_hopper, Settings(blink_threshold=threshold))
    assert out is grace_hopper
    assert telemetry.faces[0].gates["blink"] == 0.0


def test_video_mode_ramps_the_strength_in(grace_hopper: Frame) -> None:
    backend = FakeBackend()
    with Corrector(backend, video=True) as corrector:
        strengths = [corrector.process(grace_hopper, Settings(ramp_frames=4))[1].faces[0].strength for _ in range(6)]
    assert strengths == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    assert [s[0] for s in backend.strengths] == pytest.approx(strengths)


def test_look_away_fades_the_correction_out(grace_hopper: Frame) -> None:
    # The network reports a gaze 40 degrees off the target: past look_away_end_deg (30) the correction fades out.
    backend = FakeBackend(gaze_deg=(0.0, 40.0))
    with Corrector(backend, video=True) as corrector:
        reports = [corrector.process(grace_hopper, Settings(ramp_frames=2))[1] for _ in range(8)]
    assert reports[0].faces[0].gates["look_away"] == 1.0  # no estimate yet on the first frame
    assert reports[-1].faces[0].gates["look_away"] == 0.0
    assert reports[-1].faces[0].strength == 0.0


def test_prepare_and_finish_batch_two_streams_in_one_call(grace_hopper: Frame, astronaut: Frame) -> None:
    settings = Settings()
    single = FakeBackend(flow_xy=(1.0, -2.0))
    expected = []
    for frame in (grace_hopper, astronaut):
        with Corrector(single, video=False) as corrector:
            expected.append(corrector.process(frame, settings)[0])

    shared = FakeBackend(flow_xy=(1.0, -2.0))
    blank = np.full((120, 160, 3), 50, np.uint8)
    correctors = [Corrector(shared, video=False) for _ in range(3)]
    prepared = [c.prepare(f, settings) for c, f in zip(correctors, (grace_hopper, blank, astronaut), strict=True)]
    assert [p.batch for p in prepared] == [1, 0, 1]
    assert prepared[0].strips.shape == (1, 3, 64, 256)
    assert prepared[0].strips.dtype == np.float32
    assert prepared[0].targets.shape == (1, 2)
    assert prepared[1].strips.shape == (0, 3, 64, 256)
    assert prepared[1].targets.shape == (0, 2)
    assert prepared[1].strengths.shape == (0,)
    strips, targets, strengths, sizes = batch_inputs(prepared)
    outputs = shared.run(strips, targets, strengths)
    assert shared.batches == [2], "one network call for all streams"
    results = [
        c.finish(p, part if p.batch else None)
        for c, p, part in zip(correctors, prepared, outputs.split(sizes), strict=True)
    ]
    assert np.array_equal(results[0][0], expected[0])
    assert results[1][0] is blank
    assert np.array_equal(results[2][0], expected[1])
    for corrector in correctors:
        corrector.close()


def test_finish_checks_what_it_is_given(grace_hopper: Frame) -> None:
    backend = FakeBackend()
    with Corrector(backend, video=False) as a, Corrector(backend, video=False) as b:
        prepared = a.prepare(grace_hopper, Settings())
        outputs = backend.run(prepared.strips, prepared.targets, prepared.strengths)
        with pytest.raises(ValueError, match="another Corrector"):
            b.finish(prepared, outputs)
        with pytest.raises(ValueError, match="2 strips"):
            a.finish(prepared, NetOutputs.concat([outputs, outputs]))
        a.finish(prepared, outputs)
        with pytest.raises(RuntimeError, match="already finished"):
            a.finish(prepared, outputs)


def test_without_network_outputs_the_frame_goes_out_untouched(grace_hopper: Frame) -> None:
    with Corrector(FakeBackend(flow_xy=(0.0, 3.0)), video=False) as corrector:
        prepared = corrector.prepare(grace_hopper, Settings())
        out, telemetry = corrector.finish(prepared, None)
    assert out is grace_hopper
    assert telemetry.faces[0].strength == 0.0


def test_telemetry_is_json(grace_hopper: Frame) -> None:
    with Corrector(FakeBackend(flow_xy=(0.0, 3.0)), video=False) as corrector:
        _, telemetry = corrector.process(grace_hopper, Settings())
    data = json.loads(json.dumps(telemetry.to_dict()))
    assert data["mode"] == "correct"
    assert data["backend"] == "fake"
    assert set(data["timings_ms"]) == {"face", "pose", "strip", "net", "paste"}
    assert data["total_ms"] >= sum(data["timings_ms"].values()) * 0.99
    face = data["faces"][0]
    assert len(face["box"]) == 4
    assert len(face["eye_boxes"]) == 2
    assert face["strength"] == 1.0


def test_bad_frames_are_refused() -> None:
    with Corrector(FakeBackend(), video=False) as corrector, pytest.raises(ValueError, match="uint8"):
        corrector.prepare(np.zeros((10, 10, 3), np.float32), Settings())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
@pytest.mark.parametrize("flow", [(0.0, 4.0), (0.0, -4.0), (4.0, 0.0)])
def test_the_warp_field_moves_the_eyes_by_its_size_in_the_frame(
    name: str, flow: tuple[float, float], request: pytest.FixtureRequest
) -> None:
    """A backward flow of (dx, dy) strip pixels moves the content by -(dx, dy) strip pixels, i.e. by that times
    the strip's scale in the frame: MediaPipe sees the irises of the output move there."""
    frame: Frame = request.getfixturevalue(name)
    with FaceTracker(video=False) as tracker:
        before = tracker.detect(frame)[0].points[list(IRIS_CENTRES)]
        with Corrector(FakeBackend(flow_xy=flow), video=False) as corrector:
            prepared = corrector.prepare(frame, Settings())
            scale = pixels_per_strip_pixel(prepared._faces[0].homography)
            outputs = corrector.backend.run(prepared.strips, prepared.targets, prepared.strengths)
            out, _ = corrector.finish(prepared, outputs)
        moved = (tracker.detect(out)[0].points[list(IRIS_CENTRES)] - before).mean(axis=0)
    expected = -np.array(flow) * scale
    axis = int(np.argmax(np.abs(expected)))
    assert 0.6 < moved[axis] / expected[axis] < 1.4, (moved, expected)
    assert abs(moved[1 - axis]) < 0.3 * abs(expected[axis]), (moved, expected)


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_in_place_gives_the_same_frame_without_a_copy(name: str, request: pytest.FixtureRequest) -> None:
    frame: Frame = request.getfixturevalue(name)
    with _photo(frame) as corrector:
        copied, telemetry = corrector.process(frame, Settings())
    work = frame.copy()
    with _photo(frame) as corrector:
        in_place, in_place_telemetry = corrector.process(work, Settings(), in_place=True)
    assert in_place is work
    assert copied is not frame
    assert np.any(copied != frame)
    assert np.array_equal(in_place, copied)
    assert in_place_telemetry.faces[0].eye_boxes == telemetry.faces[0].eye_boxes
