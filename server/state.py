"""What the running service holds: configuration, the shared backend, the scheduler, the sessions, health and
metrics. Built once at startup (:func:`start_state`) and reached by the routers through dependencies."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from engine.model.config import RedirectorConfig
from engine.model.redirector import Redirector
from engine.runtime.backends.base import Backend
from engine.runtime.corrector import Corrector
from server.config import ServerSettings
from server.health import Health
from server.metrics import Metrics
from server.rtc.registry import SessionRegistry
from server.rtc.scheduler import BatchScheduler

logger = logging.getLogger(__name__)


class WeightsMissingError(RuntimeError):
    """No redirector weights, and the configuration requires them."""


@dataclass
class AppState:
    """The service's long-lived objects."""

    config: ServerSettings
    backend: Backend
    scheduler: BatchScheduler
    registry: SessionRegistry
    health: Health
    metrics: Metrics

    def new_corrector(self) -> Corrector:
        """A corrector for one more stream, on the shared backend."""
        return Corrector(self.backend, video=True)

    async def close(self) -> None:
        """Hang up every session and stop the scheduler; the backend is released last."""
        await self.registry.close_all()
        await self.scheduler.close()
        self.backend.close()


def _load_model(config: ServerSettings, health: Health) -> Redirector:
    """The configured or shipped redirector; without weights, an untrained one (pass-through) unless required."""
    from engine.runtime.backends.select import load_model  # pulls in the training stack only here

    try:
        model = load_model(config.weights)
    except FileNotFoundError as err:
        if config.require_weights:
            raise WeightsMissingError(f"{err} (MIRADA_REQUIRE_WEIGHTS is set)") from err
        logger.warning(
            "%s. Serving with an UNTRAINED redirector: every stage runs, but the eyes are not redirected "
            "(/readyz says passthrough: true).",
            err,
        )
        health.passthrough = True
        health.weights = None
        return Redirector(RedirectorConfig()).eval()
    health.weights = str(config.weights) if config.weights is not None else "bundled"
    return model


def build_backend(config: ServerSettings, health: Health) -> Backend:
    """Load the weights and build the configured backend (slow: it may export ONNX or build a TensorRT engine)."""
    from engine.runtime.backends.select import select_backend

    model = _load_model(config, health)
    return select_backend(
        config.backend, model, cache_dir=config.cache_dir, cpu_threads=config.cpu_threads, mirror=config.mirror
    )


async def start_state(
    config: ServerSettings, backend: Backend | None = None, metrics: Metrics | None = None
) -> AppState:
    """Build everything and start the scheduler. ``backend`` replaces the configured one (tests, embedding)."""
    metrics = Metrics() if metrics is None else metrics
    health = Health(metrics, degraded_window_s=config.degraded_window_s)
    if backend is None:
        backend = await asyncio.to_thread(build_backend, config, health)
    else:
        health.weights = "injected"
    health.backend = backend.name
    scheduler = BatchScheduler(
        backend,
        health,
        metrics,
        window_s=config.batch_window_ms / 1000.0,
        max_batch=config.max_batch,
        workers=config.workers,
    )
    scheduler.start()
    registry = SessionRegistry(config.max_sessions, config.session_idle_timeout_s)
    metrics.watch_sessions(lambda: (len(registry), [s.stats.fps for s in registry.sessions()]))
    health.ready = True
    logger.info(
        "ready: backend %s, weights %s, up to %d sessions", backend.name, health.weights or "none", config.max_sessions
    )
    return AppState(config, backend, scheduler, registry, health, metrics)
