"""Videos in and out with PyAV: every frame through the function, timestamps, frame rate and audio kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from engine.runtime.media import is_image, is_video, probe_video, read_image, transform_video, write_image
from engine.runtime.samples import animate, fit_to_frame
from tests.runtime.fakes import write_test_video

Frame = NDArray[np.uint8]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, grace_hopper: Frame) -> Path:
    base = fit_to_frame(grace_hopper, 320, 240)
    path = tmp_path_factory.mktemp("video") / "in.mp4"
    write_test_video(path, [animate(base, i) for i in range(12)], fps=25)
    return path


def test_transform_keeps_frames_rate_and_audio(clip: Path, tmp_path: Path) -> None:
    times: list[float] = []

    def darken(frame: Frame, time_s: float) -> Frame:
        times.append(time_s)
        return (frame // 2).astype(np.uint8)

    out = tmp_path / "out.mp4"
    info = transform_video(clip, out, darken, progress=False)
    assert info.frames == 12
    assert info.audio
    assert times == pytest.approx([i / 25.0 for i in range(12)], abs=1e-6)
    probed = probe_video(out)
    assert probed.fps == pytest.approx(25.0)
    assert probed.audio
    assert (probed.width, probed.height) == (320, 240)
    assert probed.frames == 12
    # The function's output is what was written (up to the codec).
    first = next(_frames(out))
    assert first.mean() < 0.6 * next(_frames(clip)).mean()


def test_a_video_without_audio_and_other_containers(tmp_path: Path, grace_hopper: Frame) -> None:
    base = fit_to_frame(grace_hopper, 160, 120)
    src = tmp_path / "silent.mp4"
    write_test_video(src, [base] * 3, fps=30, audio_hz=None)
    info = transform_video(src, tmp_path / "out.mkv", lambda f, t: f, progress=False)
    assert (info.frames, info.audio) == (3, False)
    assert probe_video(tmp_path / "out.mkv").fps == pytest.approx(30.0)
    with pytest.raises(ValueError, match="unsupported video container"):
        transform_video(src, tmp_path / "out.gif", lambda f, t: f, progress=False)
    with pytest.raises(ValueError, match="frame function returned"):
        transform_video(src, tmp_path / "bad.mp4", lambda f, t: f[:10], progress=False)


def test_images_round_trip_as_rgb(tmp_path: Path, grace_hopper: Frame) -> None:
    path = tmp_path / "face.png"
    write_image(path, grace_hopper)
    assert np.array_equal(read_image(path), grace_hopper)
    assert is_image(path)
    assert not is_video(path)
    assert is_video(Path("a.MP4"))
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        read_image(tmp_path / "missing.png")


def _frames(path: Path) -> Iterator[Frame]:
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
