"""Startup: weights present, missing (pass-through or refuse), and sessions that never connect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from engine.model.mirror import MirrorEnsemble
from engine.runtime.backends import MIRROR_DEFAULT, TorchBackend
from server.config import ServerSettings
from server.health import Health
from server.main import create_app
from server.metrics import Metrics
from server.state import WeightsMissingError, build_backend
from tests.server.fakes import BrightEyesBackend
from tests.server.offers import make_offer


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """The torch backend sets torch's process-wide thread count: put it back for the tests that follow."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_missing_weights_start_in_passthrough(tmp_path: Path) -> None:
    health = Health(Metrics())
    backend = build_backend(ServerSettings(backend="torch", weights=tmp_path / "none.pt"), health)
    assert health.passthrough is True
    assert health.weights is None
    assert backend.name.startswith("torch")


def test_missing_weights_refuse_to_start_when_required(tmp_path: Path) -> None:
    config = ServerSettings(backend="torch", weights=tmp_path / "none.pt", require_weights=True)
    with pytest.raises(WeightsMissingError, match=r"none\.pt"):
        build_backend(config, Health(Metrics()))


def test_the_mirror_ensemble_follows_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerSettings().mirror is MIRROR_DEFAULT
    default = build_backend(ServerSettings(backend="torch"), Health(Metrics()))
    assert default.name.endswith("+mirror") is MIRROR_DEFAULT
    monkeypatch.setenv("MIRADA_MIRROR", "true")
    on = build_backend(ServerSettings(backend="torch"), Health(Metrics()))
    assert isinstance(on, TorchBackend)
    assert isinstance(on.model, MirrorEnsemble)
    assert on.name == "torch-cpu+mirror"
    monkeypatch.setenv("MIRADA_MIRROR", "false")
    off = build_backend(ServerSettings(backend="torch"), Health(Metrics()))
    assert isinstance(off, TorchBackend)
    assert not isinstance(off.model, MirrorEnsemble)
    assert off.name == "torch-cpu"


def test_the_bundled_weights_load() -> None:
    health = Health(Metrics())
    build_backend(ServerSettings(backend="torch"), health)
    assert health.weights == "bundled"
    assert health.passthrough is False


def test_a_session_that_never_connects_is_dropped() -> None:
    config = ServerSettings(session_idle_timeout_s=0.3)
    with TestClient(create_app(config, backend=BrightEyesBackend())) as client:
        body = client.post("/api/v1/sessions", json={"sdp": make_offer()}).json()
        url, headers = f"/api/v1/sessions/{body['id']}", {"X-Session-Token": body["token"]}
        assert client.get(url, headers=headers).status_code == 200
        deadline = time.monotonic() + 10
        while client.get(url, headers=headers).status_code == 200:
            assert time.monotonic() < deadline, "the idle session was not closed"
            time.sleep(0.1)
        assert client.get("/readyz").json()["sessions"] == 0
