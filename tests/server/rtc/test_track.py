"""Building the outgoing frame: only the corrected eye boxes are converted back, the rest stays as decoded."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from av import VideoFrame
from numpy.typing import NDArray

from engine.runtime.corrector import Corrector
from engine.runtime.samples import fit_to_frame, sample_face
from engine.runtime.settings import Settings
from server.rtc.track import changed_boxes, patch_regions, to_rgb
from tests.server.fakes import BrightEyesBackend


@pytest.fixture(scope="module")
def face() -> NDArray[np.uint8]:
    return fit_to_frame(sample_face("astronaut"), 320, 240)


def decoded(rgb: NDArray[np.uint8]) -> VideoFrame:
    """What the decoder hands over: a 4:2:0 frame with RTP timing."""
    frame = VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frame.pts = 123456
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def planes(frame: VideoFrame) -> NDArray[np.uint8]:
    return np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)


def test_only_the_boxes_change_and_timing_is_kept(face: NDArray[np.uint8]) -> None:
    like = decoded(face)
    rgb = to_rgb(like)
    edited = rgb.copy()
    box = (101, 51, 140, 77)  # odd edges: widened to even ones for the 4:2:0 chroma
    edited[box[1] : box[3], box[0] : box[2]] = 255
    out = patch_regions(like, edited, [box])
    assert out.pts == like.pts
    assert out.time_base == like.time_base
    assert out.format.name == "yuv420p"
    before, after = planes(like), planes(out)
    height, width = face.shape[:2]
    changed = np.zeros((height, width), bool)
    changed[50:78, 100:140] = True
    luma_before, luma_after = before[:height], after[:height]
    assert np.array_equal(luma_before[~changed], luma_after[~changed])  # bit-identical outside the box
    back = to_rgb(out)
    # Inside, the new pixels (2 px in: at the edge, chroma upsampling blends in the neighbours, as in any 4:2:0)
    assert np.abs(back[box[1] + 2 : box[3] - 2, box[0] + 2 : box[2] - 2].astype(int) - 255).max() <= 3
    outside = np.ones((height, width), bool)
    outside[48:80, 98:142] = False  # chroma upsampling reaches one pixel beyond the box
    assert np.array_equal(back[outside], rgb[outside])


def test_odd_sizes_take_the_whole_frame_path() -> None:
    rgb = np.full((31, 45, 3), 80, np.uint8)
    frame = VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts = 7
    out = patch_regions(frame, np.full_like(rgb, 200), [(0, 0, 10, 10)])
    assert out.pts == 7
    assert np.array_equal(out.to_ndarray(format="rgb24"), np.full_like(rgb, 200))


def test_the_corrector_changes_nothing_outside_the_boxes_it_reports(face: NDArray[np.uint8]) -> None:
    settings = Settings(head_start_deg=70, head_end_deg=80, look_away_start_deg=70, look_away_end_deg=80)
    with Corrector(BrightEyesBackend(), video=False) as corrector:
        out, telemetry = corrector.process(face, settings)
    boxes = changed_boxes(telemetry)
    assert boxes
    inside = np.zeros(face.shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
    diff = np.any(out != face, axis=2)
    assert diff.any()
    assert not diff[~inside].any()


def test_no_telemetry_or_no_boxes_means_nothing_was_written() -> None:
    assert changed_boxes(None) is None
