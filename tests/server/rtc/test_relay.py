"""The relay hands out only the newest frame and counts the ones it dropped."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from server.rtc.relay import LatestFrameRelay


class Burst(MediaStreamTrack):
    """Delivers ``n`` frames as fast as asked, numbered by pts, then ends."""

    kind = "video"

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.sent = 0

    async def recv(self) -> VideoFrame:
        if self.sent >= self.n:
            raise MediaStreamError
        frame = VideoFrame(width=16, height=16, format="yuv420p")
        frame.pts = self.sent
        self.sent += 1
        await asyncio.sleep(0)
        return frame


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_count_as_dropped() -> None:
    async def scenario() -> tuple[list[int], LatestFrameRelay]:
        relay = LatestFrameRelay(Burst(10))
        relay.start()
        await asyncio.sleep(0.05)  # the consumer is busy while all ten arrive
        got = [(await relay.recv()).frame.pts or 0]
        with pytest.raises(MediaStreamError):
            await relay.recv()
        await relay.stop()
        return got, relay

    got, relay = asyncio.run(scenario())
    assert got == [9]
    assert relay.received == 10
    assert relay.dropped == 9


def test_a_fast_consumer_gets_every_frame_in_order() -> None:
    async def scenario() -> list[int]:
        relay = LatestFrameRelay(Burst(5))
        out = []
        try:
            while True:
                out.append((await relay.recv()).frame.pts or 0)
        except MediaStreamError:
            pass
        await relay.stop()
        return out

    got = asyncio.run(scenario())
    assert got == sorted(got)
    assert got[-1] == 4
