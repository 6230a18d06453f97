"""``mirada serve``. Kept free of heavy imports (aiortc, uvicorn, the network): they load when the command runs,
so other ``mirada`` commands start fast."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

logger = logging.getLogger(__name__)


def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on [MIRADA_HOST, default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [MIRADA_PORT, default 8000].")] = None,
    backend: Annotated[
        str | None, typer.Option(help="auto, tensorrt, torch or onnxruntime [MIRADA_BACKEND, default auto].")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Redirector checkpoint [MIRADA_WEIGHTS, default: the bundled weights].")
    ] = None,
    max_sessions: Annotated[
        int | None, typer.Option(help="Concurrent sessions [MIRADA_MAX_SESSIONS, default 4].")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Per-frame worker threads [MIRADA_WORKERS, default 2].")] = None,
    mirror: Annotated[
        bool | None,
        typer.Option(
            help="Mirror ensemble: each eye strip redirected with its mirror image [MIRADA_MIRROR, default off]."
        ),
    ] = None,
) -> None:
    """Serve the WebRTC endpoint, the REST API (/docs) and the demo page (/). Other settings: MIRADA_* variables
    (see the README); an API key (MIRADA_API_KEY) is required to listen on anything but loopback."""
    from pydantic import ValidationError

    from server.config import ServerSettings

    overrides: dict[str, Any] = {
        k: v
        for k, v in dict(
            host=host,
            port=port,
            backend=backend,
            weights=weights,
            max_sessions=max_sessions,
            workers=workers,
            mirror=mirror,
        ).items()
        if v is not None
    }
    try:
        config = ServerSettings(**overrides)
    except ValidationError as err:
        messages = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors())
        raise typer.BadParameter(messages) from None

    import uvicorn

    from server.main import create_app

    logging.getLogger().setLevel(config.log_level.upper())
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level=config.log_level)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``mirada`` command."""
    app.command("serve")(serve_command)
