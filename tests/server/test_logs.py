"""Tokens and API keys in query strings never reach the logs."""

from __future__ import annotations

import logging

import pytest

from server.logs import RedactSecrets, install_redaction, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/api/v1/sessions/abc/telemetry?token=s3cret&limit=5", "/api/v1/sessions/abc/telemetry?token=***&limit=5"),
        ("/x?limit=5&api_key=k3y", "/x?limit=5&api_key=***"),
        ("/x?TOKEN=a&api_key=b", "/x?TOKEN=***&api_key=***"),
        ("/api/v1/sessions", "/api/v1/sessions"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_uvicorn_access_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    install_redaction()  # idempotent
    logger = logging.getLogger("uvicorn.access")
    assert sum(isinstance(f, RedactSecrets) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/t?token=s3cret", "1.1", 200)
    assert "s3cret" not in caplog.text
    assert "token=***" in caplog.text
