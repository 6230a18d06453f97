"""Latency of the corrector per stage on a real face, and of the network alone at several batch sizes."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.runtime.backends.base import Backend
from engine.runtime.corrector import Corrector
from engine.runtime.samples import SampleName, animate, fit_to_frame, sample_face
from engine.runtime.settings import Settings
from engine.runtime.telemetry import STAGES

NETWORK_BATCHES = (1, 8, 32)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds: median, 95th percentile and maximum."""

    p50: float
    p95: float
    max: float

    @staticmethod
    def of(samples_ms: list[float]) -> LatencyStats:
        """Statistics of a non-empty list of samples."""
        if not samples_ms:
            raise ValueError("no samples")
        values = np.asarray(samples_ms, dtype=np.float64)
        return LatencyStats(float(np.percentile(values, 50)), float(np.percentile(values, 95)), float(values.max()))


@dataclass
class BenchReport:
    """What ``mirada bench`` measures. ``stages`` includes ``total`` (the whole :meth:`Corrector.process`)."""

    backend: str
    width: int
    height: int
    frames: int
    faces: int
    faces_found: float  # mean faces corrected per frame (less than ``faces`` means the tracker lost some)
    stages: dict[str, LatencyStats]
    fps: float
    network: dict[int, LatencyStats] = field(default_factory=dict)  # batch size -> latency of one call
    machine: dict[str, Any] = field(default_factory=dict)  # machine_info() at the start

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def machine_info() -> dict[str, Any]:
    """CPU model, core count and the load average while benchmarking: latencies on a shared machine depend on it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass  # not Linux: keep what platform says
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average_1m": round(load[0], 2)}


def bench_corrector(
    backend: Backend,
    width: int = 640,
    height: int = 480,
    frames: int = 100,
    faces: int = 1,
    sample: SampleName = "grace_hopper",
    warmup: int = 5,
) -> BenchReport:
    """Run a video-mode :class:`Corrector` over ``frames`` frames of a sample face (``faces`` copies) moving
    slightly, after ``warmup`` untimed frames; report per-stage latency and the frame rate it sustains."""
    if frames < 1 or warmup < 0:
        raise ValueError(f"need frames >= 1 and warmup >= 0, got {frames}, {warmup}")
    machine = machine_info()
    base = fit_to_frame(sample_face(sample), width, height, faces)
    settings = Settings(max_faces=faces)
    per_stage: dict[str, list[float]] = {name: [] for name in (*STAGES, "total")}
    found = 0
    with Corrector(backend, video=True) as corrector:
        for index in range(warmup + frames):
            frame = animate(base, index)
            # A fresh frame each time, as from a decoder: corrected in place, as the service and `mirada correct` do.
            _, telemetry = corrector.process(frame, settings, in_place=True)
            if index < warmup:
                continue
            found += len(telemetry.faces)
            for name in STAGES:
                per_stage[name].append(telemetry.timings_ms.get(name, 0.0))
            per_stage["total"].append(telemetry.total_ms)
    total = per_stage["total"]
    return BenchReport(
        backend=backend.name,
        width=width,
        height=height,
        frames=frames,
        faces=faces,
        faces_found=found / frames,
        stages={name: LatencyStats.of(values) for name, values in per_stage.items()},
        fps=1000.0 * len(total) / max(sum(total), 1e-9),
        machine=machine,
    )


def bench_network(
    backend: Backend, batches: tuple[int, ...] = NETWORK_BATCHES, repeats: int = 5
) -> dict[int, LatencyStats]:
    """Latency of one network call at each batch size (random strips; one untimed call first)."""
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    rng = np.random.default_rng(0)
    geo = backend.geometry
    result = {}
    for batch in batches:
        strips = rng.random((batch, 3, geo.height, geo.width), dtype=np.float32)
        gaze = np.zeros((batch, 2), np.float32)
        strength = np.ones(batch, np.float32)
        backend.run(strips, gaze, strength)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            backend.run(strips, gaze, strength)
            times.append((time.perf_counter() - start) * 1000.0)
        result[batch] = LatencyStats.of(times)
    return result
