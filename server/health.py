"""The service's health: what is loaded, and whether anything failed recently (degraded)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from server.metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass
class Health:
    """Ready once the network backend is loaded. Any failure (each one made a frame go out uncorrected) marks the
    service degraded for ``degraded_window_s``. Each kind of failure is logged once with its traceback, then only
    counted: a broken backend would otherwise write a traceback 30 times a second per call."""

    metrics: Metrics
    degraded_window_s: float = 60.0
    ready: bool = False
    backend: str | None = None
    weights: str | None = None
    passthrough: bool = False
    errors: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    _last_error_at: float = -1e18
    _logged: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, stage: str, error: BaseException) -> None:
        """Record a failure in ``stage`` (safe to call from any thread)."""
        key = (stage, type(error).__name__)
        with self._lock:
            self.errors[stage] = self.errors.get(stage, 0) + 1
            self.last_error = f"{stage}: {type(error).__name__}: {error}"
            self._last_error_at = time.monotonic()
            first = key not in self._logged
            self._logged.add(key)
        self.metrics.errors.labels(stage=stage).inc()
        if first:
            logger.error(
                "%s failed (%s); frames go out uncorrected. Later %s errors of this kind are counted, not logged.",
                stage,
                type(error).__name__,
                stage,
                exc_info=error,
            )

    @property
    def degraded(self) -> bool:
        """True while a failure is more recent than the window."""
        return time.monotonic() - self._last_error_at < self.degraded_window_s
