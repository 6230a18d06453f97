"""End to end on loopback: a Python aiortc client sends a real face (a package photo, animated) to the live
service and checks the frames it gets back, with the fake network that visibly brightens the eyes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import websockets
from numpy.typing import NDArray

from server.loopback import FaceVideoTrack, LoopbackClient, Received, face_frames
from tests.server.conftest import LiveServer

T = TypeVar("T")

WIDTH, HEIGHT = 320, 240
# Keep the (fake) correction at full strength whatever head pose MediaPipe reads off the photo, from frame one.
FULL = {"head_start_deg": 70.0, "head_end_deg": 80.0, "look_away_start_deg": 70.0, "look_away_end_deg": 80.0}
FULL_NOW = {**FULL, "ramp_frames": 1}
EYE_CHANGED = 10.0  # mean |difference| in the eye boxes when the fake warps skin over them (codec noise is ~3)
CODEC_NOISE = 12.0  # bound on the mean |difference| of an untouched region after VP8 both ways

_FRAMES: list[NDArray[np.uint8]] = []


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(coro_fn(), 90))


def source() -> FaceVideoTrack:
    if not _FRAMES:
        _FRAMES.extend(face_frames(WIDTH, HEIGHT, 30))
    return FaceVideoTrack(_FRAMES, fps=30)


def eye_boxes(client: LoopbackClient) -> list[tuple[int, int, int, int]]:
    """The eye boxes of the newest telemetry that has them."""
    for message in reversed(client.telemetry()):
        for face in message.get("faces", []):
            if face.get("eye_boxes"):
                return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in face["eye_boxes"]]
    raise AssertionError("no telemetry with eye boxes")


def face_boxes(client: LoopbackClient) -> list[tuple[int, int, int, int]]:
    """Eye regions estimated from the face box (present in every mode, unlike eye_boxes)."""
    for message in reversed(client.telemetry()):
        for face in message.get("faces", []):
            x0, y0, x1, y1 = face["box"]
            w, h = x1 - x0, y1 - y0
            # Eyes sit in the upper half of the landmark box; a generous band covers both.
            return [(int(x0 + 0.1 * w), int(y0 + 0.2 * h), int(x1 - 0.1 * w), int(y0 + 0.5 * h))]
    raise AssertionError("no telemetry with a face")


def region_diffs(
    client: LoopbackClient, frame: Received, boxes: list[tuple[int, int, int, int]]
) -> tuple[float, float]:
    """(mean |diff| inside the boxes, mean |diff| outside them padded by 12 px) of a received frame against the
    frame that was sent with its index."""
    sent = client.source.source(frame.index).astype(np.float32)
    diff = np.abs(frame.rgb.astype(np.float32) - sent).mean(axis=2)
    inside = np.zeros(diff.shape, bool)
    padded = np.zeros(diff.shape, bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
        padded[max(0, y0 - 12) : y1 + 12, max(0, x0 - 12) : x1 + 12] = True
    padded[:12, :] = True  # the barcode row: sharp edges, the codec's worst case
    return float(diff[inside].mean()), float(diff[~padded].mean())


async def after(client: LoopbackClient, marker: int, n: int, timeout: float = 20.0) -> list[Received]:
    """``n`` frames received that were sent after frame ``marker`` (a settings change took effect by then)."""
    out: list[Received] = []
    seen = client.count
    deadline = asyncio.get_running_loop().time() + timeout
    while len(out) < n:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"only {len(out)} frames after #{marker}")
        await asyncio.sleep(0.02)
        fresh = client.count - seen
        seen = client.count
        out += [
            f for f in client.received[len(client.received) - min(fresh, len(client.received)) :] if f.index > marker
        ]
    return out[:n]


async def wait_settings(client: LoopbackClient, **expected: Any) -> None:
    for _ in range(500):
        for m in reversed(client.messages):
            if m.get("type") == "settings" and all(m["settings"].get(k) == v for k, v in expected.items()):
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no settings message with {expected}")


def test_correct_mode_changes_the_eyes_and_nothing_else(live_server: LiveServer) -> None:
    async def scenario() -> None:
        client = LoopbackClient(live_server.url, source(), settings=FULL_NOW)
        await client.connect()
        try:
            await client.frames(30)
            boxes = eye_boxes(client)
            frames = await client.frames(10)
        finally:
            await client.close()
        results = [region_diffs(client, f, boxes) for f in frames]
        assert np.median([r[0] for r in results]) > EYE_CHANGED, results
        assert max(r[1] for r in results) < CODEC_NOISE, results
        assert all(f.rtt_ms is not None for f in frames)
        assert client.video_codec() == "video/VP8"

    run(scenario)


def test_h264_and_audio_pass_through(live_server: LiveServer) -> None:
    async def scenario() -> None:
        client = LoopbackClient(live_server.url, source(), settings=FULL_NOW, codec="video/H264", audio=True)
        await client.connect()
        try:
            await client.frames(20)
            boxes = eye_boxes(client)
            frames = await client.frames(8)
            codec = client.video_codec()
            audio = client.audio_frames
        finally:
            await client.close()
        assert codec == "video/H264"
        eyes = [region_diffs(client, f, boxes)[0] for f in frames]
        assert np.median(eyes) > EYE_CHANGED, eyes
        assert audio > 10  # the audio came back (20 ms packets)

    run(scenario)


def test_rest_patch_to_off_then_back_to_correct(live_server: LiveServer) -> None:
    async def scenario() -> None:
        client = LoopbackClient(live_server.url, source(), settings=FULL_NOW)
        await client.connect()
        try:
            await client.frames(20)
            boxes = eye_boxes(client)
            async with httpx.AsyncClient(base_url=live_server.url) as http:
                response = await http.patch(
                    f"/api/v1/sessions/{client.session_id}", json={"mode": "off"}, headers=client.headers()
                )
                assert response.status_code == 200, response.text
                assert response.json()["settings"]["mode"] == "off"
                off = await after(client, client.source.index, 8)
                response = await http.patch(
                    f"/api/v1/sessions/{client.session_id}", json={"mode": "correct"}, headers=client.headers()
                )
                assert response.status_code == 200
                await client.frames(5)  # the ramp restarts after off
                on = await after(client, client.source.index, 8)
        finally:
            await client.close()
        off_eyes = [region_diffs(client, f, boxes)[0] for f in off]
        assert max(off_eyes) < CODEC_NOISE, off_eyes  # untouched: the input up to codec noise
        on_eyes = [region_diffs(client, f, eye_boxes(client))[0] for f in on]
        assert np.median(on_eyes) > EYE_CHANGED, on_eyes

    run(scenario)


def test_data_channel_estimate_mode_sends_telemetry_and_leaves_frames(live_server: LiveServer) -> None:
    async def scenario() -> None:
        client = LoopbackClient(live_server.url, source(), settings=FULL_NOW)
        await client.connect()
        try:
            await client.frames(10)
            client.send({"type": "settings", "settings": {"mode": "estimate"}})
            await wait_settings(client, mode="estimate")
            frames = await after(client, client.source.index, 10)
            client.send({"type": "settings", "settings": {"strength": 7}})  # out of range: refused, nothing changes
            client.send({"type": "ping", "t": 42})
            await asyncio.sleep(0.5)
        finally:
            await client.close()
        boxes = face_boxes(client)
        eyes = [region_diffs(client, f, boxes)[0] for f in frames]
        assert max(eyes) < CODEC_NOISE, eyes
        estimates = [m for m in client.telemetry() if m.get("mode") == "estimate" and m["faces"]]
        assert len(estimates) >= 5
        gaze = estimates[-1]["faces"][0]["gaze_deg"]
        assert gaze == pytest.approx([2.0, -3.0], abs=0.5)  # what the fake network estimates
        errors = [m for m in client.messages if m.get("type") == "error"]
        assert errors
        assert errors[-1]["detail"][0]["loc"] == ["strength"]
        assert {"type": "pong", "t": 42} in client.messages

    run(scenario)


def test_telemetry_streams_over_sse_and_websocket(live_server: LiveServer) -> None:
    async def scenario() -> None:
        client = LoopbackClient(live_server.url, source(), settings=FULL)
        await client.connect()
        try:
            url = f"/api/v1/sessions/{client.session_id}/telemetry"
            async with httpx.AsyncClient(base_url=live_server.url, timeout=20) as http:
                events: list[dict[str, Any]] = []
                async with http.stream("GET", url, params={"limit": 5}, headers=client.headers()) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))
                assert len([e for e in events if e.get("type") == "telemetry"]) == 5
                assert events[0]["mode"] == "correct"  # the settings come first
                wrong = await http.get(url, headers={"X-Session-Token": "not-the-token"})
                assert wrong.status_code == 403

            ws_url = live_server.url.replace("http", "ws") + url + f"?token={client.token}"
            async with websockets.connect(ws_url) as socket:
                first = json.loads(await socket.recv())
                assert first["type"] == "settings"
                await socket.send(json.dumps({"type": "settings", "settings": {"strength": 0.5}}))
                kinds: list[str] = []
                while "settings" not in kinds or "telemetry" not in kinds:
                    message = json.loads(await asyncio.wait_for(socket.recv(), 10))
                    kinds.append(message["type"])
                    if message["type"] == "settings":
                        assert message["settings"]["strength"] == 0.5
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                async with websockets.connect(live_server.url.replace("http", "ws") + url + "?token=nope") as socket:
                    await socket.recv()
            assert refused.value.response.status_code == 403
        finally:
            await client.close()

    run(scenario)


def test_backend_failure_fails_open_logs_once_and_degrades(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[LoopbackClient, list[Received]]:
        client = LoopbackClient(live_server.url, source(), settings=FULL_NOW)
        await client.connect()
        try:
            await client.frames(10)
            boxes[:] = eye_boxes(client)  # where the (now failing) network was correcting
            live_server.backend.fail = True
            frames = await after(client, client.source.index, 15)
        finally:
            live_server.backend.fail = False
            await client.close()
        return client, frames

    boxes: list[tuple[int, int, int, int]] = []
    with caplog.at_level(logging.ERROR, logger="server"):
        client, frames = run(scenario)
    assert len(frames) == 15  # the call went on
    eyes = [region_diffs(client, f, boxes)[0] for f in frames]
    assert max(eyes) < CODEC_NOISE, eyes  # ...with the camera's own frames: uncorrected, not frozen or garbled
    logged = [r for r in caplog.records if "net failed" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    ready = httpx.get(live_server.url + "/readyz").json()
    assert ready["degraded"] is True
    assert ready["errors"]["net"] >= 15
    metrics = httpx.get(live_server.url + "/metrics").text
    assert 'mirada_errors_total{stage="net"}' in metrics


def test_session_over_the_limit_gets_503_and_the_others_keep_going(live_server: LiveServer) -> None:
    async def scenario() -> None:
        clients = [LoopbackClient(live_server.url, source(), settings=FULL) for _ in range(3)]
        for c in clients:
            await c.connect()
        try:
            extra = LoopbackClient(live_server.url, source())
            with pytest.raises(httpx.HTTPStatusError) as refused:
                await extra.connect()
            assert refused.value.response.status_code == 503
            await extra.pc.close()
            before = [c.count for c in clients]
            await asyncio.sleep(2.0)
            rates = [(c.count - b) / 2.0 for c, b in zip(clients, before, strict=True)]
            assert min(rates) > 2, rates  # still flowing (the rate itself is the benchmark's business)
        finally:
            for c in clients:
                await c.close()

    run(scenario)
