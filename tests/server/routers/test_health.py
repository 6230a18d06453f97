"""/healthz and /readyz."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_the_backend_and_capacity(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["backend"] == "bright-eyes"
    assert body["weights"] == "injected"
    assert body["degraded"] is False
    assert body["errors"] == {}
    assert body["sessions"] == 0
    assert body["max_sessions"] == 2


def test_readyz_turns_degraded_after_an_error(client: TestClient) -> None:
    state = client.app.state.mirada  # type: ignore[attr-defined]
    state.health.report("net", RuntimeError("boom"))
    body = client.get("/readyz").json()
    assert body["ready"] is True  # calls still go on, uncorrected
    assert body["degraded"] is True
    assert body["errors"] == {"net": 1}
    assert "boom" in body["last_error"]
