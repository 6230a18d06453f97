"""Fixtures of the service tests: a fake network with visible output, apps on it, and a live server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr

from server.config import ServerSettings
from server.main import create_app
from tests.server.fakes import BrightEyesBackend

API_KEY = "test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def backend() -> BrightEyesBackend:
    return BrightEyesBackend()


@pytest.fixture
def client(backend: BrightEyesBackend) -> Iterator[TestClient]:
    """The app without an API key (loopback), on the fake network."""
    with TestClient(create_app(ServerSettings(max_sessions=2), backend=backend)) as test_client:
        yield test_client


@pytest.fixture
def keyed_client(backend: BrightEyesBackend) -> Iterator[TestClient]:
    """The app with an API key."""
    with TestClient(create_app(ServerSettings(api_key=SecretStr(API_KEY)), backend=backend)) as test_client:
        yield test_client


@dataclass
class LiveServer:
    """A service on a real loopback port (uvicorn in a thread)."""

    url: str
    backend: BrightEyesBackend
    server: uvicorn.Server


def start_server(config: ServerSettings, backend: BrightEyesBackend) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, backend=backend), host=config.host, port=config.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return server, thread


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    backend = BrightEyesBackend()
    port = free_port()
    server, thread = start_server(ServerSettings(port=port, max_sessions=3), backend)
    yield LiveServer(f"http://127.0.0.1:{port}", backend, server)
    server.should_exit = True
    thread.join(timeout=30)
