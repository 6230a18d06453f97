"""Prometheus instruments of one service instance (their own registry, so several apps in one process, as in
tests, do not collide)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Per-frame stage latencies are milliseconds-scale; the buckets cover 0.5 ms (GPU network) to 1 s (a stall).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.012, 0.016, 0.025, 0.033, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


class _SessionCollector(Collector):
    """Gauges read from the live sessions at scrape time (nothing to keep in sync)."""

    def __init__(self, read: Callable[[], tuple[int, list[float]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        count, fps = self._read()
        yield GaugeMetricFamily("mirada_sessions_active", "Open sessions.", value=count)
        mean = sum(fps) / len(fps) if fps else 0.0
        yield GaugeMetricFamily("mirada_session_fps_mean", "Mean output frame rate over the open sessions.", mean)
        yield GaugeMetricFamily(
            "mirada_session_fps_min", "Lowest output frame rate of an open session.", min(fps) if fps else 0.0
        )


class Metrics:
    """The service's counters and histograms; :meth:`watch_sessions` adds the session gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames_in = Counter("mirada_frames_in", "Video frames decoded from clients.", registry=r)
        self.frames_out = Counter("mirada_frames_out", "Video frames sent back to clients.", registry=r)
        self.frames_dropped = Counter(
            "mirada_frames_dropped",
            "Frames replaced by a newer one before processing (the server was busy).",
            registry=r,
        )
        self.errors = Counter(
            "mirada_errors", "Failures, by stage; the frame went out uncorrected.", ["stage"], registry=r
        )
        self.sessions_opened = Counter("mirada_sessions_opened", "Sessions created.", registry=r)
        self.sessions_rejected = Counter(
            "mirada_sessions_rejected", "Session requests refused, by reason.", ["reason"], registry=r
        )
        self.stage_seconds = Histogram(
            "mirada_stage_seconds",
            "Per-frame wall time of each corrector stage (face, pose, strip, net, paste) and of the whole frame "
            "(total: decoded frame in to corrected frame out, queueing included).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "mirada_batch_strips",
            "Eye strips per network call (all sessions together).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )

    def watch_sessions(self, read: Callable[[], tuple[int, list[float]]]) -> None:
        """Report the session count and frame rates that ``read`` returns at each scrape."""
        self.registry.register(_SessionCollector(read))
