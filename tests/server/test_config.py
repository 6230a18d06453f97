"""Service configuration: environment variables, and no exposed port without an API key."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from server.config import ServerSettings, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("::", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_defaults_listen_on_loopback_without_a_key() -> None:
    config = ServerSettings()
    assert config.host == "127.0.0.1"
    assert config.port == 8000
    assert not config.auth_required


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.2"])
def test_refuses_to_expose_the_service_without_a_key(host: str) -> None:
    with pytest.raises(ValidationError, match="refusing to listen"):
        ServerSettings(host=host)
    assert ServerSettings(host=host, api_key=SecretStr("k" * 16)).auth_required


def test_short_keys_are_refused_and_empty_means_none() -> None:
    with pytest.raises(ValidationError, match="16 characters"):
        ServerSettings(api_key=SecretStr("short"))
    assert ServerSettings(api_key=SecretStr("")).api_key is None


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRADA_HOST", "0.0.0.0")
    monkeypatch.setenv("MIRADA_API_KEY", "secret-secret-secret")
    monkeypatch.setenv("MIRADA_MAX_SESSIONS", "9")
    monkeypatch.setenv("MIRADA_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("MIRADA_ICE_SERVERS", '["stun:stun.example:3478"]')
    monkeypatch.setenv("MIRADA_BACKEND", "onnxruntime")
    config = ServerSettings()
    assert config.host == "0.0.0.0"
    assert config.max_sessions == 9
    assert config.backend == "onnxruntime"
    assert config.cors_origins == ["http://a.example", "http://b.example"]
    assert config.ice_servers == ["stun:stun.example:3478"]
    assert "secret" not in repr(config)  # the key never shows in logs or tracebacks


@pytest.mark.parametrize(
    ("name", "value"), [("MIRADA_PORT", "0"), ("MIRADA_BACKEND", "quantum"), ("MIRADA_MAX_SESSIONS", "-1")]
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        ServerSettings()
