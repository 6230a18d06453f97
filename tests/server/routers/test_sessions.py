"""The sessions API: create, read, change, delete; tokens, API key, limits and bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import API_KEY
from tests.server.offers import make_offer

OFFER = make_offer()


def create(client: TestClient, **body: object) -> dict[str, object]:
    response = client.post("/api/v1/sessions", json={"sdp": OFFER, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_returns_an_answer_token_and_settings(client: TestClient) -> None:
    body = create(client, settings={"strength": 0.4, "target_pitch_deg": -5})
    assert body["type"] == "answer"
    assert "m=video" in str(body["sdp"])
    assert isinstance(body["token"], str)
    assert len(str(body["token"])) >= 24
    settings = body["settings"]
    assert isinstance(settings, dict)
    assert settings["strength"] == 0.4
    assert settings["target_pitch_deg"] == -5
    assert settings["mode"] == "correct"


def test_read_patch_delete_with_the_token(client: TestClient) -> None:
    body = create(client)
    url, headers = f"/api/v1/sessions/{body['id']}", {"X-Session-Token": str(body["token"])}
    info = client.get(url, headers=headers).json()
    assert info["state"] in {"new", "connecting"}
    assert info["frames_out"] == 0
    assert info["latency_ms_p95"] is None
    patched = client.patch(url, json={"mode": "estimate", "target_yaw_deg": 10}, headers=headers)
    assert patched.status_code == 200
    assert patched.json()["settings"]["mode"] == "estimate"
    assert patched.json()["settings"]["strength"] == 1.0  # untouched fields keep their values
    assert client.get(url, params={"token": body["token"]}).json()["settings"]["target_yaw_deg"] == 10
    assert client.delete(url, headers=headers).status_code == 204
    assert client.get(url, headers=headers).status_code == 404


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"strength": 1.5}, "strength"),
        ({"target_pitch_deg": -90}, "target_pitch_deg"),
        ({"mode": "sideways"}, "mode"),
        ({"max_faces": 0}, "max_faces"),
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"look_away_start_deg": 40, "look_away_end_deg": 30}, None),
    ],
)
def test_invalid_settings_are_422_and_change_nothing(
    client: TestClient, patch: dict[str, object], field: str | None
) -> None:
    body = create(client)
    url, headers = f"/api/v1/sessions/{body['id']}", {"X-Session-Token": str(body["token"])}
    response = client.patch(url, json=patch, headers=headers)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    if field is not None:
        assert detail[0]["loc"][-1] == field
    assert client.get(url, headers=headers).json()["settings"]["strength"] == 1.0
    assert client.post("/api/v1/sessions", json={"sdp": OFFER, "settings": patch}).status_code == 422


def test_a_token_cannot_control_another_session(client: TestClient) -> None:
    first, second = create(client), create(client)
    url = f"/api/v1/sessions/{first['id']}"
    stolen = {"X-Session-Token": str(second["token"])}
    assert client.get(url, headers=stolen).status_code == 403
    assert client.patch(url, json={"mode": "off"}, headers=stolen).status_code == 403
    assert client.delete(url, headers=stolen).status_code == 403
    assert client.get(url).status_code == 401
    mine = {"X-Session-Token": str(first["token"])}
    assert client.get(url, headers=mine).json()["settings"]["mode"] == "correct"


def test_unknown_session_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/sessions/nope", headers={"X-Session-Token": "x"})
    assert response.status_code == 404
    assert response.json() == {"detail": "no such session"}


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        ("not an sdp", "no video"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "SDP"),
        (make_offer(video=0, audio=True), "no video"),
        (make_offer(video=2), "2 video tracks"),
    ],
)
def test_bad_offers_are_400(client: TestClient, sdp: str, message: str) -> None:
    response = client.post("/api/v1/sessions", json={"sdp": sdp})
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert client.get("/readyz").json()["sessions"] == 0  # the slot was given back


@pytest.mark.parametrize(
    "body",
    [{}, {"sdp": ""}, {"sdp": 5}, {"sdp": "x" * 70_000}, {"sdp": "v=0", "type": "answer"}, {"sdp": "v=0", "extra": 1}],
)
def test_malformed_bodies_are_422(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/api/v1/sessions", json=body).status_code == 422


def test_not_json_is_4xx(client: TestClient) -> None:
    response = client.post("/api/v1/sessions", content=b"\xff\x00", headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500


def test_over_the_limit_is_503_and_existing_sessions_stay(client: TestClient) -> None:
    first, second = create(client), create(client)  # the fixture's limit is 2
    response = client.post("/api/v1/sessions", json={"sdp": OFFER})
    assert response.status_code == 503
    assert "limit" in response.json()["detail"]
    assert response.headers["retry-after"]
    for body in (first, second):
        assert (
            client.get(f"/api/v1/sessions/{body['id']}", headers={"X-Session-Token": str(body["token"])}).status_code
            == 200
        )
    client.delete(f"/api/v1/sessions/{first['id']}", headers={"X-Session-Token": str(first["token"])})
    assert client.post("/api/v1/sessions", json={"sdp": OFFER}).status_code == 201
    assert 'mirada_sessions_rejected_total{reason="limit"} 1.0' in client.get("/metrics").text


def test_api_key_is_required_when_configured(keyed_client: TestClient) -> None:
    assert keyed_client.post("/api/v1/sessions", json={"sdp": OFFER}).status_code == 401
    wrong = keyed_client.post("/api/v1/sessions", json={"sdp": OFFER}, headers={"X-API-Key": "wrong-key-0123456789"})
    assert wrong.status_code == 401
    ok = keyed_client.post("/api/v1/sessions", json={"sdp": OFFER}, headers={"X-API-Key": API_KEY})
    assert ok.status_code == 201
    body = ok.json()
    url = f"/api/v1/sessions/{body['id']}"
    # the session token alone is not enough: the API key still applies
    assert keyed_client.get(url, headers={"X-Session-Token": body["token"]}).status_code == 401
    bearer = {"Authorization": f"Bearer {API_KEY}", "X-Session-Token": body["token"]}
    assert keyed_client.get(url, headers=bearer).status_code == 200
    assert keyed_client.get("/metrics").status_code == 401
    assert keyed_client.get("/metrics", headers={"X-API-Key": API_KEY}).status_code == 200
    assert keyed_client.get("/healthz").status_code == 200  # probes need no key


def test_openapi_documents_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/sessions", "/api/v1/sessions/{session_id}", "/api/v1/sessions/{session_id}/telemetry"} <= set(
        paths
    )
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/sessions/{session_id}"])
    assert client.get("/docs").status_code == 200
