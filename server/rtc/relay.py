"""Keep only the newest frame of a live track, so a slow consumer never falls behind the camera."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArrivedFrame:
    """A decoded frame and when it arrived (``time.perf_counter()`` seconds): the start of its added latency."""

    frame: VideoFrame
    arrived: float


class LatestFrameRelay:
    """Reads ``source`` as fast as it delivers and hands :meth:`recv` callers only the newest frame.

    A frame replaced before anyone took it counts in :attr:`dropped`. When the source ends, :meth:`recv` raises
    :class:`MediaStreamError` (as a track does).
    """

    def __init__(self, source: MediaStreamTrack) -> None:
        self.source = source
        self.received = 0
        self.dropped = 0
        self._latest: ArrivedFrame | None = None
        self._ready = asyncio.Event()
        self._ended = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reading the source (idempotent; needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump(), name=f"relay-{self.source.id}")

    async def _pump(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                if not isinstance(frame, VideoFrame):
                    continue
                self.received += 1
                if self._latest is not None:
                    self.dropped += 1  # the consumer was busy: this frame is stale now
                self._latest = ArrivedFrame(frame, time.perf_counter())
                self._ready.set()
        except MediaStreamError:
            logger.debug("source track %s ended", self.source.id)
        finally:
            self._ended = True
            self._ready.set()

    async def recv(self) -> ArrivedFrame:
        """The newest frame not handed out yet; waits for one if there is none."""
        self.start()
        while self._latest is None:
            if self._ended:
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        latest, self._latest = self._latest, None
        return latest

    async def stop(self) -> None:
        """Stop reading the source."""
        self._ended = True
        self._ready.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
