"""The data-channel protocol, without a connection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from engine.runtime.settings import Settings
from server.health import Health
from server.metrics import Metrics
from server.rtc.datachannel import MAX_MESSAGE_BYTES, handle
from server.rtc.scheduler import BatchScheduler
from server.rtc.session import Session
from tests.server.fakes import BrightEyesBackend


@pytest.fixture
def session() -> Session:
    async def make() -> Session:
        backend = BrightEyesBackend()
        sched = BatchScheduler(backend, Health(Metrics()), Metrics())
        return Session(Settings(), sched, lambda: None)  # type: ignore[arg-type,return-value]

    return asyncio.run(make())


def reply(session: Session, message: Any) -> dict[str, Any] | None:
    return handle(session, message if isinstance(message, str | bytes) else json.dumps(message))


def test_settings_update_applies_and_is_broadcast(session: Session) -> None:
    queue = session.listen()
    assert reply(session, {"type": "settings", "settings": {"strength": 0.3, "mode": "estimate"}}) is None
    assert session.settings.strength == 0.3
    assert session.settings.mode == "estimate"
    assert queue.get_nowait()["settings"]["strength"] == 0.3


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("{nope", "not JSON"),
        ("[1, 2]", "JSON object"),
        ({"type": "settings", "settings": {"strength": -1}}, "invalid settings"),
        ({"type": "settings", "settings": {"nonsense": 1}}, "invalid settings"),
        ({"type": "settings", "settings": 3}, "must be an object"),
        ({"type": "launch"}, "unknown message type"),
        ("x" * (MAX_MESSAGE_BYTES + 1), "larger than"),
    ],
)
def test_bad_messages_get_an_error_and_change_nothing(session: Session, message: Any, error: str) -> None:
    answer = reply(session, message)
    assert answer is not None
    assert answer["type"] == "error"
    assert error in answer["error"]
    assert session.settings == Settings()


def test_get_and_ping(session: Session) -> None:
    answer = reply(session, {"type": "get"})
    assert answer is not None
    assert answer["settings"]["mode"] == "correct"
    assert reply(session, {"type": "ping", "t": 1.5}) == {"type": "pong", "t": 1.5}
