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
    out.pts = like.pts
    out.time_base = like.time_base
    return out


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
                out, telemetry = await self.scheduler.process(self.corrector, rgb, self._settings(), timestamp)
                if out is not rgb:
                    try:
                        out_frame = await loop.run_in_executor(self.scheduler.pool, from_rgb, out, frame)
                    except Exception as err:
                        self.scheduler.health.report("encode", err)
        self._on_frame(telemetry, (time.perf_counter() - arrived.arrived) * 1000.0)
        return out_frame

    async def drain(self) -> None:
        """Wait until no frame of this track is being processed."""
        if self._inflight is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._inflight
