"""Fixtures of the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """ONNX exports and TensorRT engines go to a folder of this test session, not to the user's ~/.cache/mirada:
    a test run leaves nothing behind, and never runs an export that an earlier run of other code left there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIRADA_CACHE_DIR", str(tmp_path_factory.mktemp("engine-cache")))
        yield
