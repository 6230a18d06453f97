"""/metrics in Prometheus text format."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families


def test_metrics_parse_and_name_what_matters(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    expected = {
        "mirada_sessions_active",
        "mirada_session_fps_mean",
        "mirada_frames_in",
        "mirada_frames_out",
        "mirada_frames_dropped",
        "mirada_errors",
        "mirada_stage_seconds",
        "mirada_batch_strips",
    }
    assert expected <= names
