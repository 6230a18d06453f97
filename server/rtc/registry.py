"""The open sessions, with the session limit (instead of a global set of peer connections)."""

from __future__ import annotations

import asyncio
import logging

from server.rtc.session import Session

logger = logging.getLogger(__name__)


class SessionLimitError(RuntimeError):
    """All session slots are taken."""


class SessionRegistry:
    """Holds at most ``max_sessions`` sessions. :meth:`add` reserves a slot before the (slow) negotiation, so
    concurrent requests cannot overshoot the limit."""

    def __init__(self, max_sessions: int, idle_timeout_s: float = 30.0) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self._sessions: dict[str, Session] = {}
        self._watchdogs: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[Session]:
        """A snapshot of the open sessions."""
        return list(self._sessions.values())

    def get(self, session_id: str) -> Session | None:
        """The session ``session_id``, or None."""
        return self._sessions.get(session_id)

    def add(self, session: Session) -> None:
        """Register ``session``; raises :class:`SessionLimitError` when full. It is closed and forgotten if it
        has not connected within ``idle_timeout_s``."""
        if len(self._sessions) >= self.max_sessions:
            raise SessionLimitError(f"the service is at its limit of {self.max_sessions} sessions")
        self._sessions[session.id] = session
        self._watchdogs[session.id] = asyncio.get_running_loop().create_task(self._watch(session))

    async def _watch(self, session: Session) -> None:
        await asyncio.sleep(self.idle_timeout_s)
        if session.state != "connected" and not session.closed:
            logger.info("session %s did not connect within %.0f s; closing it", session.id, self.idle_timeout_s)
            await self.remove(session.id)

    def forget(self, session_id: str) -> None:
        """Drop ``session_id`` from the registry without closing it (its own close hook calls this)."""
        self._sessions.pop(session_id, None)
        task = self._watchdogs.pop(session_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def remove(self, session_id: str) -> bool:
        """Close and forget ``session_id``; False if there was no such session."""
        session = self._sessions.get(session_id)
        if session is None:
            return False
        self.forget(session_id)
        await session.close()
        return True

    async def close_all(self) -> None:
        """Close every session (service shutdown)."""
        for session_id in list(self._sessions):
            await self.remove(session_id)
