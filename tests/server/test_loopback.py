"""The loopback client's frame stamps: every frame it gets back can be matched to the frame it sent."""

from __future__ import annotations

import pytest

from server.loopback import FaceVideoTrack, face_frames, read_stamp


@pytest.mark.parametrize("index", [0, 1, 2, 255, 4097, 12345, 65535])
def test_stamps_read_back(index: int) -> None:
    track = FaceVideoTrack(face_frames(160, 120, 2))
    assert read_stamp(track.source(index)) == index


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        FaceVideoTrack(face_frames(161, 120, 1))
