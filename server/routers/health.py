"""``/healthz`` (the process is alive) and ``/readyz`` (the model is loaded; degraded or not)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from server.deps import StateDep
from server.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    """Liveness: 200 while the process serves requests."""
    return Health()


@router.get("/readyz", responses={503: {"model": Readiness, "description": "Not ready to take calls."}})
async def readyz(state: StateDep, response: Response) -> Readiness:
    """Readiness: 200 once the backend is loaded (``degraded`` says whether a step failed recently, which makes
    frames go out uncorrected but does not stop calls); 503 before that."""
    health = state.health
    if not health.ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        ready=health.ready,
        backend=health.backend,
        weights=health.weights,
        passthrough=health.passthrough,
        degraded=health.degraded,
        last_error=health.last_error,
        errors=dict(health.errors),
        sessions=len(state.registry),
        max_sessions=state.registry.max_sessions,
    )
