"""A Python WebRTC client of the service, for the end-to-end tests, the load benchmark and smoke checks.

:class:`FaceVideoTrack` plays a real face photo shipped in a package, animated with a small head motion, at a
fixed frame rate, and stamps each frame's index into a barcode in its top-left corner, so the client can pair
every frame it gets back with the frame it sent (pixels and send time) whatever the server dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from av import VideoFrame
from numpy.typing import NDArray

if TYPE_CHECKING:
    from engine.runtime.samples import SampleName

Uint8Array = NDArray[np.uint8]

BARCODE_BITS = 16
BARCODE_CELL = 10  # pixels per bit: large enough to survive VP8 at a low bitrate
_CLOCK = 90_000
_TIME_BASE = fractions.Fraction(1, _CLOCK)


def to_i420(rgb: Uint8Array) -> Uint8Array:
    """RGB as the encoder's 4:2:0 planes (``H * 3 / 2`` x ``W``), converted the way PyAV converts."""
    frame = VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
    return np.asarray(frame.to_ndarray(), dtype=np.uint8)


def stamp_i420(planes: Uint8Array, index: int, width: int, height: int) -> Uint8Array:
    """``index`` (mod 2^16) as black (Y 16) or white (Y 235) cells with neutral chroma along the top-left edge of a
    copy of 4:2:0 ``planes``. Stamping the planes the encoder takes saves two whole-frame colour conversions per
    frame, which would otherwise count against the service in a loopback benchmark."""
    out = planes.copy()
    c = BARCODE_CELL
    luma = out[:height]
    flat = out.reshape(-1)
    quarter = width * height // 4
    u = flat[width * height : width * height + quarter].reshape(height // 2, width // 2)
    v = flat[width * height + quarter :].reshape(height // 2, width // 2)
    for bit in range(BARCODE_BITS):
        luma[0:c, bit * c : (bit + 1) * c] = 235 if (index >> bit) & 1 else 16
        u[0 : c // 2, bit * c // 2 : (bit + 1) * c // 2] = 128
        v[0 : c // 2, bit * c // 2 : (bit + 1) * c // 2] = 128
    return out


def read_stamp(frame: Uint8Array) -> int:
    """The index :func:`stamp_i420` wrote (read from the centre of each cell)."""
    c = BARCODE_CELL
    y = c // 2
    value = 0
    for bit in range(BARCODE_BITS):
        x = bit * c + c // 2
        if frame[y - 1 : y + 2, x - 1 : x + 2].mean() > 127:
            value |= 1 << bit
    return value


def face_frames(width: int, height: int, count: int = 60, name: SampleName = "astronaut") -> list[Uint8Array]:
    """``count`` frames of the package photo ``name`` moving slightly (a loop the source plays over and over)."""
    from engine.runtime.samples import animate, fit_to_frame, sample_face  # heavy: only when frames are made

    still = fit_to_frame(sample_face(name), width, height)
    return [animate(still, i) for i in range(count)]


class FaceVideoTrack(MediaStreamTrack):
    """Plays ``frames`` (RGB, even sizes) in a loop at ``fps``, stamped with their running index; remembers when
    each index was sent (``sent_at``, ``time.perf_counter()`` seconds). :meth:`source` gives the RGB picture
    sent as an index."""

    kind = "video"

    def __init__(self, frames: list[Uint8Array], fps: float = 30.0) -> None:
        super().__init__()
        if not frames:
            raise ValueError("need at least one frame")
        self.height, self.width = frames[0].shape[:2]
        if self.width % 2 or self.height % 2:
            raise ValueError(f"frame sizes must be even, got {self.width} x {self.height}")
        self.frames = [to_i420(f) for f in frames]
        self.fps = fps
        self.index = -1
        self.sent_at: dict[int, float] = {}
        self._start: float | None = None

    def planes(self, index: int) -> Uint8Array:
        """The 4:2:0 planes sent as ``index``."""
        return stamp_i420(self.frames[index % len(self.frames)], index, self.width, self.height)

    def source(self, index: int) -> Uint8Array:
        """The RGB picture sent as ``index`` (as a decoder shows it before any codec loss)."""
        frame = VideoFrame.from_ndarray(self.planes(index), format="yuv420p")
        return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)

    async def recv(self) -> VideoFrame:
        """The next frame, on the frame clock."""
        if self.readyState != "live":
            raise MediaStreamError
        self.index += 1
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        due = self._start + self.index / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        frame = VideoFrame.from_ndarray(self.planes(self.index), format="yuv420p")
        frame.pts = int(self.index * _CLOCK / self.fps)
        frame.time_base = _TIME_BASE
        self.sent_at[self.index % (1 << BARCODE_BITS)] = time.perf_counter()
        return frame


@dataclass
class Received:
    """A frame that came back: its index (from the barcode), pixels, and round-trip time in ms."""

    index: int
    rgb: Uint8Array
    rtt_ms: float | None


@dataclass
class LoopbackClient:
    """One session against ``base_url``: sends :class:`FaceVideoTrack`, keeps what comes back.

    ``keep`` bounds the frames kept in :attr:`received` (the newest); every frame still counts in :attr:`count`.
    """

    base_url: str
    source: FaceVideoTrack
    settings: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = None
    keep: int = 120
    codec: str | None = None  # e.g. "video/H264": offer only this video codec (default: aiortc's, VP8 first)
    audio: bool = False  # also send a (silent) audio track, which the service passes back
    pc: RTCPeerConnection = field(init=False)
    channel: RTCDataChannel = field(init=False)
    session_id: str = ""
    token: str = ""
    answer_sdp: str = ""
    received: list[Received] = field(default_factory=list)
    count: int = 0
    audio_frames: int = 0
    rtts_ms: list[float] = field(default_factory=list)  # every frame's round trip (the benchmark's percentiles)
    messages: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _audio_reader: asyncio.Task[None] | None = None
    _track_ready: asyncio.Event = field(default_factory=asyncio.Event)

    def headers(self) -> dict[str, str]:
        """The API key and session token headers."""
        out = {"X-Session-Token": self.token} if self.token else {}
        if self.api_key:
            out["X-API-Key"] = self.api_key
        return out

    async def connect(self, timeout: float = 20.0) -> None:
        """Offer, post, answer, and wait until the corrected track plays and the data channel is open."""
        import httpx

        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(self.source)
        if self.codec is not None:
            capabilities = RTCRtpSender.getCapabilities("video")
            preferred = [c for c in capabilities.codecs if c.mimeType.lower() == self.codec.lower()]
            if not preferred:
                raise ValueError(f"aiortc cannot send {self.codec}")
            video = next(t for t in self.pc.getTransceivers() if t.kind == "video")
            video.setCodecPreferences(preferred)
        if self.audio:
            self.pc.addTrack(AudioStreamTrack())
        self.channel = self.pc.createDataChannel("mirada")
        opened = asyncio.Event()
        self.channel.on("open", opened.set)
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription
        async with httpx.AsyncClient(base_url=self.base_url, timeout=timeout) as http:
            response = await http.post(
                "/api/v1/sessions",
                json={"sdp": offer.sdp, "type": "offer", "settings": self.settings},
                headers=self.headers(),
            )
        response.raise_for_status()
        body = response.json()
        self.session_id, self.token, self.answer_sdp = body["id"], body["token"], body["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
        await asyncio.wait_for(asyncio.gather(opened.wait(), self._track_ready.wait()), timeout)

    def _on_message(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        if message.get("type") != "telemetry":
            self.messages.append(message)
        else:
            self.messages.append(message)
            del self.messages[: -4 * self.keep]

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self._reader is None:
            self._reader = asyncio.ensure_future(self._read(track))
        elif track.kind == "audio":
            self._audio_reader = asyncio.ensure_future(self._read_audio(track))

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.audio_frames += 1

    def video_codec(self) -> str | None:
        """The video codec the service answered with (its first for video), e.g. ``video/VP8``."""
        lines = self.answer_sdp.splitlines()
        video = next((line.split()[3] for line in lines if line.startswith("m=video ")), None)
        prefix = f"a=rtpmap:{video} "
        return next((f"video/{line[len(prefix) :].split('/')[0]}" for line in lines if line.startswith(prefix)), None)

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, VideoFrame):
                    continue
                now = time.perf_counter()
                rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                index = read_stamp(rgb)
                sent = self.source.sent_at.get(index)
                self.count += 1
                rtt = None if sent is None else (now - sent) * 1000.0
                if rtt is not None:
                    self.rtts_ms.append(rtt)
                self.received.append(Received(index, rgb, rtt))
                del self.received[: -self.keep]
                self._track_ready.set()

    async def frames(self, n: int, timeout: float = 20.0) -> list[Received]:
        """Wait for ``n`` more frames and return them."""
        start = self.count
        deadline = time.perf_counter() + timeout
        while self.count - start < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"got {self.count - start} of {n} frames in {timeout} s")
            await asyncio.sleep(0.01)
        return self.received[-n:]

    def send(self, message: dict[str, Any]) -> None:
        """Send a data-channel message."""
        self.channel.send(json.dumps(message))

    def telemetry(self) -> list[dict[str, Any]]:
        """The telemetry messages received so far (the newest ``4 * keep``)."""
        return [m for m in self.messages if m.get("type") == "telemetry"]

    async def close(self) -> None:
        """Hang up."""
        self.source.stop()
        await self.pc.close()
        for reader in (self._reader, self._audio_reader):
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
