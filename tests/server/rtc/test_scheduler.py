"""The batching scheduler: one network call for frames of several sessions, fail open on errors."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from numpy.typing import NDArray

from engine.runtime.corrector import Corrector
from engine.runtime.samples import fit_to_frame, sample_face
from engine.runtime.settings import Mode, Settings
from engine.runtime.telemetry import Telemetry
from server.health import Health
from server.metrics import Metrics
from server.rtc.scheduler import BatchScheduler
from tests.server.fakes import BrightEyesBackend

FULL = Settings(head_start_deg=70, head_end_deg=80, look_away_start_deg=70, look_away_end_deg=80, ramp_frames=1)


@pytest.fixture(scope="module")
def face() -> NDArray[np.uint8]:
    return fit_to_frame(sample_face("astronaut"), 320, 240)


def scheduler(backend: BrightEyesBackend, window_s: float = 0.05) -> BatchScheduler:
    return BatchScheduler(backend, Health(Metrics()), Metrics(), window_s=window_s, max_batch=32, workers=2)


def test_frames_of_several_sessions_share_one_network_call(face: NDArray[np.uint8]) -> None:
    backend = BrightEyesBackend(delay_s=0.05)  # a slow call: frames queue behind it and batch up

    async def scenario() -> list[tuple[NDArray[np.uint8], Telemetry | None]]:
        sched = scheduler(backend)
        correctors = [Corrector(backend, video=False) for _ in range(4)]
        try:
            return await asyncio.gather(*(sched.process(c, face, FULL) for c in correctors))
        finally:
            await sched.close()
            for c in correctors:
                c.close()

    results = asyncio.run(scenario())
    assert sum(backend.batches) == 4
    assert len(backend.batches) < 4, backend.batches  # batched: fewer calls than frames
    for out, telemetry in results:
        assert telemetry is not None
        assert telemetry.faces
        assert not np.array_equal(out, face)  # each frame got its own share of the outputs pasted


def test_no_face_skips_the_network(face: NDArray[np.uint8]) -> None:
    backend = BrightEyesBackend()
    blank = np.full_like(face, 90)

    async def scenario() -> tuple[NDArray[np.uint8], Telemetry | None]:
        sched = scheduler(backend)
        with Corrector(backend, video=False) as corrector:
            try:
                return await sched.process(corrector, blank, FULL)
            finally:
                await sched.close()

    out, telemetry = asyncio.run(scenario())
    assert out is blank
    assert backend.batches == []
    assert telemetry is not None
    assert telemetry.faces == []


def test_a_dead_backend_fails_open_and_logs_once(face: NDArray[np.uint8], caplog: pytest.LogCaptureFixture) -> None:
    backend = BrightEyesBackend()
    backend.fail = True

    async def scenario() -> tuple[BatchScheduler, list[tuple[NDArray[np.uint8], Telemetry | None]]]:
        sched = scheduler(backend, window_s=0.0)
        with Corrector(backend, video=True) as corrector:
            try:
                results = [await sched.process(corrector, face, FULL, i / 30) for i in range(5)]
            finally:
                await sched.close()
        return sched, results

    with caplog.at_level(logging.ERROR):
        sched, results = asyncio.run(scenario())
    for out, _ in results:
        assert np.array_equal(out, face)  # uncorrected, but delivered
    assert len([r for r in caplog.records if "net failed" in r.getMessage()]) == 1
    assert sched.health.degraded
    assert sched.health.errors == {"net": 5}


def test_a_failing_corrector_fails_open(face: NDArray[np.uint8]) -> None:
    class Broken(Corrector):
        def prepare(self, frame_rgb: NDArray[np.uint8], settings: Settings, timestamp_s: float | None = None):  # type: ignore[no-untyped-def]
            raise ValueError("landmarker crashed (test)")

    backend = BrightEyesBackend()

    async def scenario() -> tuple[NDArray[np.uint8], object, BatchScheduler]:
        sched = scheduler(backend)
        try:
            out, telemetry = await sched.process(Broken(backend), face, FULL)
        finally:
            await sched.close()
        return out, telemetry, sched

    out, telemetry, sched = asyncio.run(scenario())
    assert out is face
    assert telemetry is None
    assert sched.health.errors == {"prepare": 1}


def test_off_mode_returns_the_input_itself(face: NDArray[np.uint8]) -> None:
    backend = BrightEyesBackend()

    async def scenario() -> NDArray[np.uint8]:
        sched = scheduler(backend)
        with Corrector(backend) as corrector:
            try:
                out, _ = await sched.process(corrector, face, Settings(mode=Mode.OFF))
            finally:
                await sched.close()
        return out

    assert asyncio.run(scenario()) is face
    assert backend.batches == []


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        BatchScheduler(BrightEyesBackend(), Health(Metrics()), Metrics(), max_batch=0)
