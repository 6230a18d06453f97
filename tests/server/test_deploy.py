"""Dockerfile and docker-compose.yml: no Docker engine here, so check their structure (and run
``docker compose config`` where a Compose client exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.server.browser import in_ci

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_dockerfile_is_multi_stage_nvidia_non_root_with_healthcheck_and_cache() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert re.search(r"^ARG BASE_IMAGE=nvidia/cuda:\S+-runtime-", text, flags=re.MULTILINE)
    assert "tensorrt" in text
    assert "COPY --from=build" in text
    user = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert user
    assert user[-1] not in {"root", "0"}
    assert "HEALTHCHECK" in text
    assert "/readyz" in text
    assert 'VOLUME ["/cache"]' in text
    assert "MIRADA_CACHE_DIR=/cache" in text
    assert "MIRADA_HOST=0.0.0.0" in text  # and therefore an API key, which the config enforces
    for path in re.findall(r"^COPY (?!--)(\S+)", text, flags=re.MULTILINE):
        assert (ROOT / path).exists(), path


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "runs", ".env"} <= ignored


def test_compose_gpu_service_and_cpu_variant() -> None:
    services = compose()["services"]
    gpu, cpu = services["mirada"], services["mirada-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert devices[0]["capabilities"] == ["gpu"]
    assert "profiles" not in gpu
    assert cpu["profiles"] == ["cpu"]
    assert "deploy" not in cpu
    assert cpu["build"]["args"]["TENSORRT"] == ""
    assert cpu["environment"]["MIRADA_BACKEND"] == "onnxruntime"
    for service in (gpu, cpu):
        assert service["ports"] == ["127.0.0.1:8000:8000"]
        assert service["volumes"] == ["engine-cache:/cache"]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["environment"]["MIRADA_API_KEY"].startswith("${MIRADA_API_KEY:?")
    assert "engine-cache" in compose()["volumes"]


def compose_client() -> list[str] | None:
    """``docker compose`` (v2) or ``docker-compose`` (v1, Debian's package), whichever exists."""
    docker = shutil.which("docker")
    if docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def test_docker_compose_config_when_a_client_exists() -> None:
    client = compose_client()
    if client is None:
        if in_ci():
            pytest.fail("no Compose client in CI (.ci/run installs docker-compose)")
        pytest.skip("no Compose client here (CI installs docker-compose); the structural checks above still ran")
    env = {"MIRADA_API_KEY": "k" * 16, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    for profile in ([], ["--profile", "cpu"]):
        result = subprocess.run([*client, *profile, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    missing_key = subprocess.run(
        [*client, "config", "-q"], cwd=ROOT, env={"PATH": env["PATH"]}, capture_output=True, text=True
    )
    assert missing_key.returncode != 0
    assert "MIRADA_API_KEY" in missing_key.stderr
