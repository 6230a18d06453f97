"""Keep secrets out of the logs: session tokens and API keys travel in query strings (EventSource and WebSocket
cannot set headers), and uvicorn logs request paths with their query strings."""

from __future__ import annotations

import logging
import re

_SECRET = re.compile(r"((?:^|[?&])(?:token|api_key)=)[^&\s\"']+", re.IGNORECASE)
REDACTED = "***"
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn")


def redact(text: str) -> str:
    """``text`` with the values of ``token=`` and ``api_key=`` query parameters replaced."""
    return _SECRET.sub(rf"\g<1>{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's arguments (uvicorn passes the path as one) and message before they are formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_redaction() -> None:
    """Add the filter to uvicorn's loggers (idempotent). Call it after uvicorn configured logging."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
