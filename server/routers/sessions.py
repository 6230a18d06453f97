"""``/api/v1/sessions``: open a call with an SDP offer, read and change its settings, hang up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Response, status
from pydantic import ValidationError

from engine.runtime.settings import Settings
from server.deps import SessionDep, StateDep, require_api_key
from server.rtc.datachannel import validation_detail
from server.rtc.registry import SessionLimitError
from server.rtc.session import OfferError, Session
from server.schemas import ErrorBody, SessionCreate, SessionCreated, SessionInfo

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/sessions",
    tags=["sessions"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorBody, "description": "Missing or wrong API key."}},
)

_SESSION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing API key or session token."},
    403: {"model": ErrorBody, "description": "The token belongs to another session."},
    404: {"model": ErrorBody, "description": "No such session."},
}


def _info(session: Session) -> SessionInfo:
    return SessionInfo(
        id=session.id,
        state=session.state,
        created_at=session.created_at,
        settings=session.settings,
        frames_in=session.frames_in,
        frames_out=session.stats.frames_out,
        frames_dropped=session.frames_dropped,
        frames_uncorrected=session.stats.uncorrected,
        fps=round(session.stats.fps, 2),
        latency_ms_p50=_round(session.stats.latency_ms(0.5)),
        latency_ms_p95=_round(session.stats.latency_ms(0.95)),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _validated(settings: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(settings)
    except ValidationError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_detail(err)) from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"model": ErrorBody, "description": "The SDP offer is malformed or has no video."},
        422: {"model": ErrorBody, "description": "Invalid settings or body."},
        503: {"model": ErrorBody, "description": "The service is at its session limit."},
    },
)
async def create_session(body: SessionCreate, state: StateDep) -> SessionCreated:
    """Open a session: answer the browser's offer with a track carrying its corrected camera."""
    settings = _validated(body.settings)
    session = Session(
        settings,
        state.scheduler,
        state.new_corrector,
        ice_servers=state.config.ice_servers,
        on_closed=_forget(state.registry.forget),
        metrics=state.metrics,
    )
    try:
        state.registry.add(session)  # reserves the slot before the slow negotiation
    except SessionLimitError as err:
        state.metrics.sessions_rejected.labels(reason="limit").inc()
        await session.close()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(err), headers={"Retry-After": "10"}) from None
    try:
        answer = await session.answer(body.sdp)
    except OfferError as err:
        state.metrics.sessions_rejected.labels(reason="offer").inc()
        await state.registry.remove(session.id)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from None
    except BaseException:
        await state.registry.remove(session.id)
        raise
    state.metrics.sessions_opened.inc()
    logger.info("session %s opened (%d/%d)", session.id, len(state.registry), state.registry.max_sessions)
    return SessionCreated(id=session.id, token=session.token, sdp=answer.sdp, settings=session.settings)


def _forget(forget: Callable[[str], None]) -> Callable[[Session], Awaitable[None]]:
    """The session's close hook: drop it from the registry (whoever closed it: client, timeout, DELETE)."""

    async def on_closed(session: Session) -> None:
        forget(session.id)
        logger.info("session %s closed", session.id)

    return on_closed


@router.get("/{session_id}", responses=_SESSION_ERRORS)
async def read_session(session: SessionDep) -> SessionInfo:
    """The session's settings, connection state, frame rate and latency."""
    return _info(session)


@router.patch(
    "/{session_id}",
    responses={**_SESSION_ERRORS, 422: {"model": ErrorBody, "description": "Unknown field or value out of range."}},
)
async def update_session(
    session: SessionDep,
    patch: Annotated[
        dict[str, Any],
        Body(
            description="Any fields of Settings; the others keep their values.",
            openapi_examples={"strength": {"value": {"strength": 0.6, "target_pitch_deg": -5.0}}},
        ),
    ],
) -> SessionInfo:
    """Change some settings; the next frame uses them (and data-channel clients are told)."""
    try:
        session.update_settings(patch)  # merges and validates; the settings stay as they were if it raises
    except ValidationError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_detail(err)) from None
    return _info(session)


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_SESSION_ERRORS)
async def delete_session(session: SessionDep, state: StateDep) -> Response:
    """Hang up."""
    await state.registry.remove(session.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
