"""The data-channel protocol: JSON text messages, one object each, with a ``type``.

Client to server:

- ``{"type": "settings", "settings": {...}}``: a partial settings update (same fields and rules as
  ``PATCH /api/v1/sessions/{id}``); answered with the full settings, or an ``error``.
- ``{"type": "get"}``: answered with the full settings.
- ``{"type": "ping", "t": ANY}``: answered with ``{"type": "pong", "t": ANY}`` (round-trip time).

Server to client: ``settings`` (after every change, whoever made it), ``telemetry`` (every frame, see
:func:`server.rtc.session.telemetry_message`), ``error`` (``{"type": "error", "error": TEXT, "detail": [...]}``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiortc.rtcdatachannel import RTCDataChannel
from pydantic import ValidationError

if TYPE_CHECKING:
    from server.rtc.session import Session

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024  # settings fit in a few hundred bytes; anything bigger is a mistake or abuse
_BACKLOG_BYTES = 256 * 1024  # stop queueing telemetry on a channel whose peer does not read it


def send(channel: RTCDataChannel, message: dict[str, Any]) -> None:
    """Send ``message`` if the channel is open and not backed up (telemetry is worthless when late)."""
    if channel.readyState != "open":
        return
    if message.get("type") == "telemetry" and channel.bufferedAmount > _BACKLOG_BYTES:
        return
    try:
        channel.send(json.dumps(message, separators=(",", ":")))
    except Exception:  # the transport went away between the check and the send: the session is closing
        logger.debug("data channel send failed", exc_info=True)


def validation_detail(err: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as plain JSON (no exception objects, no documentation links)."""
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in err.errors(include_url=False, include_context=False, include_input=False)
    ]


def handle(session: Session, raw: str | bytes) -> dict[str, Any] | None:
    """The reply to one client message (None: no reply)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return {"type": "error", "error": f"message larger than {MAX_MESSAGE_BYTES} bytes"}
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"type": "error", "error": "message is not JSON"}
    if not isinstance(message, dict):
        return {"type": "error", "error": "message must be a JSON object with a 'type'"}
    kind = message.get("type")
    if kind == "ping":
        return {"type": "pong", "t": message.get("t")}
    if kind == "get":
        return {"type": "settings", "settings": session.settings.model_dump(mode="json")}
    if kind == "settings":
        patch = message.get("settings")
        if not isinstance(patch, dict):
            return {"type": "error", "error": "'settings' must be an object of settings fields"}
        try:
            session.update_settings(patch)  # broadcasts the new settings to every channel and listener
        except ValidationError as err:
            return {"type": "error", "error": "invalid settings", "detail": validation_detail(err)}
        return None
    return {"type": "error", "error": f"unknown message type {kind!r}; use settings, get or ping"}


def attach(session: Session, channel: RTCDataChannel) -> None:
    """Serve the protocol on ``channel`` and greet the client with the current settings."""

    def on_message(raw: str | bytes) -> None:
        reply = handle(session, raw)
        if reply is not None:
            send(channel, reply)

    def on_open() -> None:
        send(channel, {"type": "settings", "settings": session.settings.model_dump(mode="json")})

    channel.on("message", on_message)
    channel.on("open", on_open)
    if channel.readyState == "open":
        on_open()
