"""``/api/v1/sessions/{id}/telemetry``: every frame's telemetry as Server-Sent Events or over a WebSocket.

The WebSocket also accepts the data-channel messages (settings, get, ping), so a tool that cannot speak WebRTC
can still steer a session with low latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, WebSocket, WebSocketDisconnect, status
from fastapi.responses import StreamingResponse

from server.deps import SessionDep, StateDep, api_key_error, require_api_key, session_error
from server.rtc.datachannel import MAX_MESSAGE_BYTES, handle
from server.rtc.session import Session
from server.schemas import ErrorBody

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/sessions", tags=["telemetry"])

_KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream


async def _events(session: Session, limit: int | None) -> AsyncIterator[str]:
    queue = session.listen()
    sent = 0
    try:
        yield f"event: settings\ndata: {json.dumps(session.settings.model_dump(mode='json'))}\n\n"
        while limit is None or sent < limit:
            try:
                message = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if message.get("type") == "closed":
                yield "event: closed\ndata: {}\n\n"
                return
            yield f"event: {message.get('type', 'message')}\ndata: {json.dumps(message, separators=(',', ':'))}\n\n"
            sent += message.get("type") == "telemetry"
    finally:
        session.unlisten(queue)


@router.get(
    "/{session_id}/telemetry",
    dependencies=[Depends(require_api_key)],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Events: settings, telemetry, closed."},
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
    },
)
async def telemetry_events(
    session: SessionDep,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000, description="End after this many telemetry events.")] = None,
) -> StreamingResponse:
    """Server-Sent Events: the current settings first, then one ``telemetry`` event per frame (gaze and head
    estimates, applied strength, stage timings, latency), ``settings`` after each change, ``closed`` at the end."""
    return StreamingResponse(
        _events(session, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/{session_id}/telemetry")
async def telemetry_socket(
    websocket: WebSocket,
    session_id: str,
    state: StateDep,
    token: Annotated[str | None, Query()] = None,
    api_key: Annotated[str | None, Query()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    x_session_token: Annotated[str | None, Header()] = None,
) -> None:
    """The same messages as JSON text frames; send data-channel messages to change settings."""
    key_error = api_key_error(state, x_api_key, websocket.headers.get("authorization"), api_key)
    session = state.registry.get(session_id)
    refusal = key_error or (error[1] if (error := session_error(session, x_session_token or token)) else None)
    if refusal is not None or session is None:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=refusal or "no such session")
        return
    await websocket.accept()
    queue = session.listen()
    await websocket.send_json({"type": "settings", "settings": session.settings.model_dump(mode="json")})
    reader = asyncio.create_task(_read_commands(websocket, session))
    try:
        while not reader.done():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, timeout=_KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                continue
            message = getter.result()
            await websocket.send_json(message)
            if message.get("type") == "closed":
                break
    except WebSocketDisconnect:
        pass
    finally:
        session.unlisten(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await reader
        with contextlib.suppress(RuntimeError):  # already closed by the client
            await websocket.close()


async def _read_commands(websocket: WebSocket, session: Session) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or message.get("bytes") or b""
        reply = handle(session, raw[: MAX_MESSAGE_BYTES + 1])
        if reply is not None:
            await websocket.send_json(reply)
