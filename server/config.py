"""Service configuration: every field can be set with an environment variable ``MIRADA_<FIELD>`` (or a ``.env``
file), and ``mirada serve`` options override them."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BackendChoice = Literal["auto", "tensorrt", "torch", "onnxruntime"]


def is_loopback(host: str) -> bool:
    """True if ``host`` (an address or a name) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a host name: loopback only if every address it resolves to is
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0])).is_loopback for info in infos)


class ServerSettings(BaseSettings):
    """How the service runs. Secrets (``api_key``) are never logged or shown in the API."""

    model_config = SettingsConfigDict(env_prefix="MIRADA_", env_file=".env", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    backend: BackendChoice = "auto"
    # A redirector training checkpoint; None: the bundled weights (engine/weights), if they are there.
    weights: Path | None = None
    # Without any weights the service still starts and passes frames through an untrained network (the eyes stay
    # as they are, everything else works); set this to refuse to start instead (production).
    require_weights: bool = False
    cpu_threads: int = Field(default=1, ge=1, le=64)
    # The mirror ensemble (engine.model.mirror): each eye strip redirected together with its mirror image and the
    # two averaged; more accurate gaze, twice the network's work per face. The same default as the engine's
    # MIRROR_DEFAULT (engine.runtime.backends.select), spelled out here to keep torch out of this module's imports.
    mirror: bool = False
    cache_dir: Path | None = None  # exported ONNX files and TensorRT engines; None: engine's default

    max_sessions: int = Field(default=4, ge=1, le=256)
    api_key: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # STUN/TURN URLs for clients behind NAT; none by default (loopback and LAN need none, and nothing outside
    # this machine is contacted unless configured).
    ice_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)

    batch_window_ms: float = Field(default=4.0, ge=0.0, le=100.0)
    max_batch: int = Field(default=32, ge=1, le=32)
    workers: int = Field(default=2, ge=1, le=64)  # threads for the per-frame CPU work (landmarks, paste)
    session_idle_timeout_s: float = Field(default=30.0, gt=0.0)  # a session that never connects is dropped
    degraded_window_s: float = Field(default=60.0, gt=0.0)  # health stays degraded this long after an error
    web_dir: Path | None = None  # the demo page; None: the repository's web/ folder
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("cors_origins", "ice_servers", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # Environment variables hold comma-separated lists ("a,b"); JSON lists also work.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None  # MIRADA_API_KEY= (empty) means no key
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("api_key must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _key_when_exposed(self) -> Self:
        if self.api_key is None and not is_loopback(self.host):
            raise ValueError(
                f"refusing to listen on {self.host} without an API key: set MIRADA_API_KEY (16+ characters) or "
                "bind to 127.0.0.1"
            )
        return self

    @property
    def auth_required(self) -> bool:
        """Whether API requests must carry the API key."""
        return self.api_key is not None
