"""One call: a peer connection, its corrector and settings, its statistics and its telemetry listeners."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel

from engine.runtime.corrector import Corrector
from engine.runtime.settings import Settings
from engine.runtime.telemetry import Telemetry
from server.metrics import Metrics
from server.rtc.relay import LatestFrameRelay
from server.rtc.scheduler import BatchScheduler
from server.rtc.track import CorrectedVideoTrack

logger = logging.getLogger(__name__)

_TELEMETRY_QUEUE = 8  # per listener; a slow listener loses the oldest messages, never slows the call
_LATENCY_WINDOW = 300  # frames kept for the latency percentiles (10 s at 30 fps)
_FPS_WINDOW_S = 2.0


class OfferError(ValueError):
    """The client's SDP offer cannot be answered (malformed, or no video to correct)."""


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def telemetry_message(telemetry: Telemetry | None, latency_ms: float, fps: float) -> dict[str, Any]:
    """The per-frame telemetry sent over the data channel, SSE and WebSocket (JSON-ready)."""
    body: dict[str, Any] = {"type": "telemetry", "latency_ms": round(latency_ms, 2), "fps": round(fps, 2)}
    if telemetry is None:
        body.update(corrected=False, faces=[])
        return body
    body.update(
        corrected=True,
        frame_index=telemetry.frame_index,
        mode=telemetry.mode.value,
        backend=telemetry.backend,
        total_ms=round(telemetry.total_ms, 2),
        timings_ms={k: round(v, 2) for k, v in telemetry.timings_ms.items()},
        faces=[face.model_dump(mode="json") for face in telemetry.faces],
    )
    return body


class SessionStats:
    """Frame counts, output frame rate and added latency (decoded frame in to corrected frame out)."""

    def __init__(self) -> None:
        self.frames_out = 0
        self.uncorrected = 0
        self._latency: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._times: deque[float] = deque()

    def add(self, latency_ms: float, corrected: bool) -> None:
        """Count one frame sent."""
        now = time.perf_counter()
        self.frames_out += 1
        self.uncorrected += 0 if corrected else 1
        self._latency.append(latency_ms)
        self._times.append(now)
        while self._times and now - self._times[0] > _FPS_WINDOW_S:
            self._times.popleft()

    @property
    def fps(self) -> float:
        """Frames sent per second over the last two seconds."""
        if len(self._times) < 2 or time.perf_counter() - self._times[-1] > _FPS_WINDOW_S:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-6)

    def latency_ms(self, q: float) -> float | None:
        """The ``q`` quantile (0-1) of the recent added latencies, None before the first frame."""
        if not self._latency:
            return None
        ordered = sorted(self._latency)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Session:
    """A client's call. Created by the sessions router, kept in :class:`~server.rtc.registry.SessionRegistry`.

    The token is only kept as a hash, and compared in constant time. ``on_closed`` runs once when the peer
    connection fails or closes, so the registry can forget the session.
    """

    def __init__(
        self,
        settings: Settings,
        scheduler: BatchScheduler,
        corrector_factory: Callable[[], Corrector],
        *,
        ice_servers: list[str] | None = None,
        on_closed: Callable[[Session], Awaitable[None]] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.id = secrets.token_urlsafe(12)
        self.token = secrets.token_urlsafe(24)  # handed to the client once, in the create response
        self._token_hash = _hash(self.token)
        self.settings = settings
        self.created_at = time.time()
        self.stats = SessionStats()
        self.scheduler = scheduler
        self._corrector_factory = corrector_factory
        self._on_closed = on_closed
        self._metrics = metrics
        self._counted_in = 0
        self._counted_dropped = 0
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._channels: list[RTCDataChannel] = []
        self._relays: list[LatestFrameRelay] = []
        self._tracks: list[CorrectedVideoTrack] = []
        self._audio = MediaRelay()
        self._corrector: Corrector | None = None
        self._closed = False
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(url) for url in ice_servers or []]))
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)

    # --- access ----------------------------------------------------------------------------------------

    def check_token(self, token: str | None) -> bool:
        """True if ``token`` is this session's token."""
        return token is not None and secrets.compare_digest(_hash(token), self._token_hash)

    @property
    def state(self) -> str:
        """The peer connection's state: new, connecting, connected, failed or closed."""
        return str(self.pc.connectionState)

    def update_settings(self, patch: dict[str, Any]) -> Settings:
        """Apply a partial update; raises pydantic's ``ValidationError`` (settings unchanged) if it is invalid.
        The next frame uses the new settings."""
        self.settings = Settings.model_validate({**self.settings.model_dump(), **patch})
        self.broadcast({"type": "settings", "settings": self.settings.model_dump(mode="json")})
        return self.settings

    # --- negotiation -----------------------------------------------------------------------------------

    async def answer(self, sdp: str) -> RTCSessionDescription:
        """Answer the client's offer; raises :class:`OfferError` if it is malformed or has no video."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as err:  # aiortc raises ValueError, KeyError, IndexError... on a bad SDP
            raise OfferError(f"malformed SDP offer: {type(err).__name__}: {err}") from err
        videos = sum(t.kind == "video" for t in self.pc.getTransceivers())
        if videos == 0:
            raise OfferError("the offer has no video track to correct")
        if videos > 1:
            # One corrector per session, and a corrector tracks one stream: open one session per camera.
            raise OfferError(f"the offer has {videos} video tracks; a session corrects one (open one per camera)")
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as err:  # e.g. no codec in common
            raise OfferError(f"cannot answer the offer: {type(err).__name__}: {err}") from err
        description = self.pc.localDescription
        if description is None:  # aiortc sets it above; a None here is a bug in the stack, not the client
            raise RuntimeError("no local description after setLocalDescription")
        return description

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            if self._corrector is None:
                self._corrector = self._build_corrector()
            relay = LatestFrameRelay(track)
            out = CorrectedVideoTrack(relay, self._corrector, self.scheduler, lambda: self.settings, self._frame_done)
            self._relays.append(relay)
            self._tracks.append(out)
            self.pc.addTrack(out)
        elif track.kind == "audio":
            self.pc.addTrack(self._audio.subscribe(track))  # passed through untouched

    def _build_corrector(self) -> Corrector | None:
        try:
            return self._corrector_factory()
        except Exception as err:  # fail open: the call works, uncorrected
            self.scheduler.health.report("corrector", err)
            return None

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        from server.rtc.datachannel import attach  # the protocol lives with the channel, not the session

        self._channels.append(channel)
        attach(self, channel)

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            await self.close()

    # --- frames and telemetry --------------------------------------------------------------------------

    def _frame_done(self, telemetry: Telemetry | None, latency_ms: float) -> None:
        self.stats.add(latency_ms, telemetry is not None)
        if self._metrics is not None:
            frames_in, dropped = self.frames_in, self.frames_dropped
            self._metrics.frames_in.inc(frames_in - self._counted_in)
            self._metrics.frames_dropped.inc(dropped - self._counted_dropped)
            self._counted_in, self._counted_dropped = frames_in, dropped
            self._metrics.frames_out.inc()
            self._metrics.stage_seconds.labels(stage="total").observe(latency_ms / 1000.0)
        self.broadcast(telemetry_message(telemetry, latency_ms, self.stats.fps))

    @property
    def frames_in(self) -> int:
        """Frames decoded from the client."""
        return sum(r.received for r in self._relays)

    @property
    def frames_dropped(self) -> int:
        """Frames replaced by a newer one before they could be processed."""
        return sum(r.dropped for r in self._relays)

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the data channels and every telemetry listener (dropping the oldest message of a
        listener that lags)."""
        from server.rtc.datachannel import send  # circular otherwise: datachannel calls back into the session

        for channel in self._channels:
            send(channel, message)
        for queue in self._listeners:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives every message broadcast from now on; :meth:`unlisten` it when done."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_TELEMETRY_QUEUE)
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop sending to ``queue``."""
        self._listeners.discard(queue)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    async def close(self) -> None:
        """Hang up: close the peer connection, wait for the frame in flight, release the corrector. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for queue in self._listeners:  # wake listeners so their streams end
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait({"type": "closed"})
        await self.pc.close()
        for relay in self._relays:
            await relay.stop()
        for track in self._tracks:
            await track.drain()
        if self._corrector is not None:
            corrector, self._corrector = self._corrector, None
            try:
                await asyncio.get_running_loop().run_in_executor(self.scheduler.pool, corrector.close)
            except RuntimeError:  # the pool is already shut down (service stopping): close here
                corrector.close()
        if self._on_closed is not None:
            await self._on_closed(self)
