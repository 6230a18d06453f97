"""The video track a session sends back: the client's camera, corrected."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import numpy as np
from aiortc.mediastreams import MediaStreamTrack
from av import VideoFrame
from numpy.typing import NDArray

from engine.runtime.corrector import Corrector
from engine.runtime.settings import Settings
from engine.runtime.telemetry import Telemetry
from server.rtc.relay import ArrivedFrame, LatestFrameRelay
from server.rtc.scheduler import BatchScheduler

logger = logging.getLogger(__name__)

Uint8Array = NDArray[np.uint8]
# Called after each frame with its telemetry (None: it went out uncorrected) and its added latency in ms.
FrameListener = Callable[[Telemetry | None, float], None]

_RTP_WRAP = 1 << 32  # RTP timestamps are 32-bit and wrap (after 13 hours at 90 kHz)


def to_rgb(frame: VideoFrame) -> Uint8Array:
    """A decoded frame as H x W x 3 uint8 RGB."""
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def from_rgb(rgb: Uint8Array, like: VideoFrame) -> VideoFrame:
    """A new frame of ``rgb`` with ``like``'s timing, so the receiver sees the camera's own timestamps."""
    out = VideoFrame.from_ndarray(rgb, format="rgb24")
    _copy_timing(like, out)
    return out


def _copy_timing(source: VideoFrame, target: VideoFrame) -> None:
    target.pts = source.pts
    if source.time_base is not None:
        target.time_base = source.time_base


Box = tuple[int, int, int, int]


def patch_regions(like: VideoFrame, rgb: Uint8Array, boxes: list[Box]) -> VideoFrame:
    """``like`` (the decoded camera frame) with only ``boxes`` (x0, y0, x1, y1) replaced by ``rgb``'s pixels.

    The corrector changes nothing outside the eye boxes it reports, so converting just those back to YUV keeps
    every other pixel exactly as decoded (no colour round trip) and costs a fraction of converting the whole
    frame (which would happen twice: ours and the encoder's). Frames that are not 4:2:0 with even
    sizes take the whole-frame path.
    """
    width, height = like.width, like.height
    if like.format.name != "yuv420p" or width % 2 or height % 2 or rgb.shape[:2] != (height, width):
        return from_rgb(rgb, like)
    yuv = np.asarray(like.to_ndarray(format="yuv420p"), dtype=np.uint8).reshape(-1)  # a copy: planes Y, U, V
    luma = yuv[: width * height].reshape(height, width)
    chroma = width * height // 4
    u = yuv[width * height : width * height + chroma].reshape(height // 2, width // 2)
    v = yuv[width * height + chroma :].reshape(height // 2, width // 2)
    for x0, y0, x1, y1 in boxes:
        # 4:2:0 chroma covers 2 x 2 pixels: widen the box to even edges so no chroma sample is split.
        x0, y0 = max(0, x0) & ~1, max(0, y0) & ~1
        x1, y1 = min(width, x1 + (x1 & 1)), min(height, y1 + (y1 & 1))
        if x1 <= x0 or y1 <= y0:
            continue
        w, h = x1 - x0, y1 - y0
        region = VideoFrame.from_ndarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]), format="rgb24")
        sub = np.asarray(region.reformat(format="yuv420p").to_ndarray(), dtype=np.uint8).reshape(-1)
        luma[y0:y1, x0:x1] = sub[: w * h].reshape(h, w)
        c = w * h // 4
        u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = sub[w * h : w * h + c].reshape(h // 2, w // 2)
        v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = sub[w * h + c :].reshape(h // 2, w // 2)
    out = VideoFrame.from_ndarray(yuv.reshape(height * 3 // 2, width), format="yuv420p")
    _copy_timing(like, out)
    return out


def changed_boxes(telemetry: Telemetry | None) -> list[Box] | None:
    """The boxes the corrector wrote, or None if it wrote none (or there is no telemetry: it did not run)."""
    if telemetry is None:
        return None
    boxes = [box for face in telemetry.faces for box in face.eye_boxes]
    return boxes or None


class _Clock:
    """Seconds since the first frame from the frames' own timestamps (unwrapped), for the corrector's filters;
    falls back to arrival time for frames without one."""

    def __init__(self) -> None:
        self._last_pts: int | None = None
        self._ticks = 0
        self._start = time.perf_counter()

    def seconds(self, frame: VideoFrame, arrived: float) -> float:
        if frame.pts is None or frame.time_base is None:
            return arrived - self._start
        if self._last_pts is not None:
            step = (frame.pts - self._last_pts) % _RTP_WRAP
            # A step backwards (a reordered or restarted stream) shows up as a huge step: ignore it.
            if step < _RTP_WRAP // 2:
                self._ticks += step
        self._last_pts = frame.pts
        return float(self._ticks * frame.time_base)


class CorrectedVideoTrack(MediaStreamTrack):
    """Takes the newest frame of ``relay``, runs it through ``corrector`` (via the shared ``scheduler``) with the
    settings ``settings()`` returns at that moment, and returns it with its original ``pts``/``time_base``.

    Frames nothing was changed in (mode off or estimate, no face) go out as the very frames that came in.
    ``corrector`` None passes everything through (the corrector could not be built: fail open).
    """

    kind = "video"

    def __init__(
        self,
        relay: LatestFrameRelay,
        corrector: Corrector | None,
        scheduler: BatchScheduler,
        settings: Callable[[], Settings],
        on_frame: FrameListener,
    ) -> None:
        super().__init__()
        self.relay = relay
        self.corrector = corrector
        self.scheduler = scheduler
        self._settings = settings
        self._on_frame = on_frame
        self._clock = _Clock()
        self._inflight: asyncio.Task[VideoFrame] | None = None

    async def recv(self) -> VideoFrame:
        """The next corrected frame (waits for the camera's next frame)."""
        arrived = await self.relay.recv()
        # The work runs in threads on this session's corrector: shield it, so a stop in the middle waits for
        # the step in flight instead of closing the corrector under it (see drain()).
        self._inflight = asyncio.ensure_future(self._process(arrived))
        return await asyncio.shield(self._inflight)

    async def _process(self, arrived: ArrivedFrame) -> VideoFrame:
        frame = arrived.frame
        out_frame = frame
        telemetry: Telemetry | None = None
        if self.corrector is not None:
            loop = asyncio.get_running_loop()
            try:
                rgb = await loop.run_in_executor(self.scheduler.pool, to_rgb, frame)
            except Exception as err:  # a frame PyAV cannot convert: send it on as it is
                self.scheduler.health.report("decode", err)
            else:
                timestamp = self._clock.seconds(frame, arrived.arrived)
                # In place: ``rgb`` is a fresh conversion of the frame, and the eye boxes in the telemetry say
                # what was written into it (none: the frame goes on as it came).
                out, telemetry = await self.scheduler.process(
                    self.corrector, rgb, self._settings(), timestamp, in_place=True
                )
                boxes = changed_boxes(telemetry)
                if boxes is not None:
                    try:
                        out_frame = await loop.run_in_executor(self.scheduler.pool, patch_regions, frame, out, boxes)
                    except Exception as err:
                        self.scheduler.health.report("encode", err)
        self._on_frame(telemetry, (time.perf_counter() - arrived.arrived) * 1000.0)
        return out_frame

    async def drain(self) -> None:
        """Wait until no frame of this track is being processed."""
        if self._inflight is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._inflight
