"""FastAPI dependencies: the app state, the API key, and the session a request names."""

from __future__ import annotations

import secrets
from typing import Annotated, cast

from fastapi import Depends, Header, HTTPException, Query, status
from starlette.requests import HTTPConnection

from server.rtc.session import Session
from server.state import AppState


def get_state(conn: HTTPConnection) -> AppState:
    """The running service's state."""
    return cast(AppState, conn.app.state.mirada)


StateDep = Annotated[AppState, Depends(get_state)]


def api_key_error(state: AppState, header_key: str | None, bearer: str | None, query_key: str | None) -> str | None:
    """Why the request is not authorised (None: it is). Accepts ``X-API-Key``, ``Authorization: Bearer`` or
    ``?api_key=`` (for EventSource and WebSocket, which cannot set headers in a browser)."""
    expected = state.config.api_key
    if expected is None:
        return None
    offered = header_key or query_key
    if offered is None and bearer is not None and bearer.lower().startswith("bearer "):
        offered = bearer[7:].strip()
    if offered is None:
        return "API key required (X-API-Key header, Authorization: Bearer, or api_key query parameter)"
    if not secrets.compare_digest(offered.encode(), expected.get_secret_value().encode()):
        return "invalid API key"
    return None


def require_api_key(
    state: StateDep,
    x_api_key: Annotated[str | None, Header(description="The service's API key, when one is configured.")] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    api_key: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> None:
    """Reject the request with 401 unless it carries the API key (when the service has one)."""
    error = api_key_error(state, x_api_key, authorization, api_key)
    if error is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, error, headers={"WWW-Authenticate": "Bearer"})


def session_error(session: Session | None, token: str | None) -> tuple[int, str] | None:
    """The status and message to refuse access to ``session`` with ``token`` (None: allowed)."""
    if session is None:
        return status.HTTP_404_NOT_FOUND, "no such session"
    if token is None:
        return status.HTTP_401_UNAUTHORIZED, "session token required (X-Session-Token header or token query parameter)"
    if not session.check_token(token):
        return status.HTTP_403_FORBIDDEN, "this token does not belong to this session"
    return None


def get_session(
    session_id: str,
    state: StateDep,
    x_session_token: Annotated[
        str | None, Header(description="The token returned when the session was created.")
    ] = None,
    token: Annotated[str | None, Query(description="The session token, for clients that cannot set headers.")] = None,
) -> Session:
    """The session in the path, if the request carries its token."""
    session = state.registry.get(session_id)
    error = session_error(session, x_session_token or token)
    if error is not None:
        raise HTTPException(*error)
    return cast(Session, session)


SessionDep = Annotated[Session, Depends(get_session)]
