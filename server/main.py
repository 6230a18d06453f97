"""The application factory: configuration in, FastAPI app out. ``mirada serve`` runs it under uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.runtime.backends.base import Backend
from server.config import ServerSettings
from server.logs import install_redaction
from server.routers import health, metrics, sessions, telemetry
from server.state import start_state

logger = logging.getLogger(__name__)

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# The demo page loads nothing from elsewhere; the policy makes sure of it (and blocks injected scripts).
_PAGE_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    b"media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    b"frame-ancestors 'none'"
)


class _PageHeaders:
    """Security headers on the demo page's files (not on the API, whose /docs page loads Swagger UI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _PAGE_POLICY),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _version() -> str:
    try:
        return version("mirada")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"


def create_app(config: ServerSettings | None = None, *, backend: Backend | None = None) -> FastAPI:
    """The service. ``config`` defaults to the environment (``MIRADA_*``); ``backend`` replaces the configured
    network (tests and embedding)."""
    config = ServerSettings() if config is None else config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_redaction()  # here, after uvicorn has configured its loggers
        state = await start_state(config, backend)
        app.state.mirada = state
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="Mirada",
        summary="Real-time gaze correction for video calls: WebRTC in, eye contact out.",
        version=_version(),
        lifespan=lifespan,
    )
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "X-Session-Token", "Authorization"],
        )
    for module in (sessions, telemetry, health, metrics):
        app.include_router(module.router)
    web_dir = config.web_dir or DEFAULT_WEB_DIR
    if (web_dir / "index.html").is_file():
        app.mount("/", _PageHeaders(StaticFiles(directory=web_dir, html=True)), name="web")
    else:
        logger.warning("no demo page at %s; serving the API only", web_dir)
    return app
