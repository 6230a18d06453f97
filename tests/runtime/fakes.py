"""Test helpers: a stand-in network with known outputs, pixel masks, and a small video writer."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engine.runtime.backends.base import Backend, Float32Array, NetOutputs


class FakeBackend(Backend):
    """Returns a constant flow (strip pixels), a constant residual (zero by default) under a mask of 0.5, and a
    fixed gaze estimate; records batch sizes."""

    name = "fake"

    def __init__(
        self,
        flow_xy: tuple[float, float] = (0.0, 0.0),
        gaze_deg: tuple[float, float] = (0.0, 0.0),
        residual: float = 0.0,
    ) -> None:
        super().__init__()
        self.flow_xy = flow_xy
        self.residual = residual
        self.gaze_deg = gaze_deg
        self.batches: list[int] = []
        self.strengths: list[list[float]] = []

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        b, _, h, w = strips.shape
        self.batches.append(b)
        self.strengths.append(strength.tolist())
        flow = np.empty((b, 2, h, w), np.float32)
        flow[:, 0] = self.flow_xy[0]
        flow[:, 1] = self.flow_xy[1]
        gaze = np.tile(np.radians(np.array(self.gaze_deg, np.float32)), (b, 1))
        return NetOutputs(
            strip_out=strips.copy(),
            flow=flow,
            residual=np.full((b, 3, h, w), self.residual, np.float32),
            mask=np.full((b, 1, h, w), 0.5, np.float32),
            gaze_estimate=gaze.astype(np.float32),
            head_estimate=np.zeros((b, 2), np.float32),
        )


def outside_boxes(shape: tuple[int, ...], boxes: list[tuple[int, int, int, int]]) -> NDArray[np.bool_]:
    """Boolean ``H x W`` mask of the pixels outside every box (x0, y0, x1, y1), exclusive ends."""
    outside = np.ones(shape[:2], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        outside[y0:y1, x0:x1] = False
    return outside


def write_test_video(path: Path, frames: list[NDArray[np.uint8]], fps: int = 25, audio_hz: int | None = 16000) -> None:
    """Write ``frames`` (RGB) as an H.264 video at ``fps`` with, unless ``audio_hz`` is None, a 440 Hz tone."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=audio_hz) if audio_hz is not None else None
        for index, frame in enumerate(frames):
            out = av.VideoFrame.from_ndarray(frame, format="rgb24")
            out.pts, out.time_base = index, Fraction(1, fps)
            for packet in video.encode(out):
                container.mux(packet)
        if audio is not None and audio_hz is not None:
            t = np.arange(audio_hz * len(frames) // fps) / audio_hz
            tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None]
            samples = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            samples.sample_rate, samples.pts = audio_hz, 0
            for packet in (*audio.encode(samples), *audio.encode(None)):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
