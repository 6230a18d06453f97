"""Request and response bodies of the API (the settings themselves are :class:`engine.runtime.settings.Settings`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.runtime.settings import Settings

MAX_SDP_CHARS = 64_000  # a browser offer with audio, video and a data channel is 3-8 KB


class SessionCreate(BaseModel):
    """A client's SDP offer (its camera track, optionally audio and a data channel) and its initial settings."""

    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS, description="The SDP offer, as the browser made it.")
    type: Literal["offer"] = "offer"
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Initial settings: any fields of Settings; the rest take their defaults."
    )


class SessionCreated(BaseModel):
    """The answer to an offer. ``token`` is shown only here: send it as ``X-Session-Token`` (or ``?token=``) to
    control the session."""

    id: str
    token: str
    sdp: str
    type: Literal["answer"] = "answer"
    settings: Settings


class SessionInfo(BaseModel):
    """A session's state, settings and recent performance. Latencies are added latency in milliseconds, from a
    decoded frame in to its corrected frame out (None before the first frame)."""

    id: str
    state: str
    created_at: float = Field(description="Unix time.")
    settings: Settings
    frames_in: int
    frames_out: int
    frames_dropped: int = Field(description="Frames skipped because a newer one arrived while busy.")
    frames_uncorrected: int = Field(description="Frames sent uncorrected because a step failed (fail open).")
    fps: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the service can take calls, and how well it is doing."""

    ready: bool
    backend: str | None
    weights: str | None = Field(description="'bundled', a checkpoint path, 'injected', or None (no weights).")
    passthrough: bool = Field(description="True without weights: frames go through an untrained network unchanged.")
    degraded: bool = Field(description="A step failed recently; the affected frames went out uncorrected.")
    last_error: str | None
    errors: dict[str, int]
    sessions: int
    max_sessions: int


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: ``detail`` is a message (or pydantic's list of errors for a 422)."""

    detail: Any
