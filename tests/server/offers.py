"""Real SDP offers made by aiortc (the test's "browser"), for API tests that never connect."""

from __future__ import annotations

import asyncio

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack


def make_offer(video: int = 1, audio: bool = False, data: bool = True) -> str:
    """An SDP offer with ``video`` video tracks and the other requested parts (the peer connection is closed again
    at once)."""

    async def offer() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            for _ in range(video):
                pc.addTrack(VideoStreamTrack())
            if audio:
                pc.addTrack(AudioStreamTrack())
            if data:
                pc.createDataChannel("mirada")
            await pc.setLocalDescription(await pc.createOffer())
            return pc.localDescription.sdp
        finally:
            await pc.close()

    return asyncio.run(offer())
