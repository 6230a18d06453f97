"""One network call per step for all sessions: the batching scheduler.

Every frame goes through three steps. ``prepare`` (landmarks, head pose, strip cut) and ``finish`` (paste-back)
run in a thread pool, each on the session's own :class:`~engine.runtime.corrector.Corrector`, so per-stream
tracking state stays separate. In between, the frame's strips wait in a queue; a single network thread takes
everything queued (up to ``max_batch`` strips) and runs the backend once. While one call runs, the next batch
fills, and frames that are still being prepared get up to ``window_s`` to join before a call starts, so one GPU
serves many sessions with few calls without adding latency to a lone session.

Fail open: an exception in any step returns the input frame uncorrected, reported to :class:`~server.health.Health`
(logged once per kind, health degraded); the stream never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.runtime.backends.base import Backend, NetOutputs
from engine.runtime.corrector import Corrector, PreparedFrame, batch_inputs
from engine.runtime.settings import Settings
from engine.runtime.telemetry import Telemetry
from server.health import Health
from server.metrics import Metrics

logger = logging.getLogger(__name__)

Uint8Array = NDArray[np.uint8]


@dataclass
class _Job:
    prepared: PreparedFrame
    done: asyncio.Future[tuple[NetOutputs | None, float]] = field(repr=False)


class BatchScheduler:
    """Runs frames of many sessions through one shared ``backend``.

    ``workers`` threads do the per-frame CPU work; one more thread owns the backend (a GPU backend keeps its
    CUDA stream and graphs on one thread). Start it with :meth:`start` inside the event loop, stop it with
    :meth:`close`.
    """

    def __init__(
        self,
        backend: Backend,
        health: Health,
        metrics: Metrics,
        *,
        window_s: float = 0.004,
        max_batch: int = 32,
        workers: int = 2,
    ) -> None:
        if max_batch < 1 or workers < 1 or window_s < 0:
            raise ValueError(
                f"need max_batch >= 1, workers >= 1, window_s >= 0; got {max_batch}, {workers}, {window_s}"
            )
        self.backend = backend
        self.health = health
        self.metrics = metrics
        self.window_s = window_s
        self.max_batch = max_batch
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="mirada-frame")
        self._net = ThreadPoolExecutor(1, thread_name_prefix="mirada-net")
        self._queue: list[_Job] = []
        self._preparing = 0  # frames in prepare right now: they will want the network in a moment
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="mirada-batcher")

    async def close(self) -> None:
        """Stop the loop, fail open whatever is queued, and shut the threads down."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in self._queue:
            if not job.done.done():
                job.done.set_result((None, 0.0))
        self._queue.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._net.shutdown(wait=False, cancel_futures=True)

    # --- one frame -------------------------------------------------------------------------------------

    async def process(
        self,
        corrector: Corrector,
        frame_rgb: Uint8Array,
        settings: Settings,
        timestamp_s: float | None = None,
        *,
        in_place: bool = False,
    ) -> tuple[Uint8Array, Telemetry | None]:
        """Correct one frame of ``corrector``'s stream; on any failure return ``frame_rgb`` itself and no
        telemetry. Frames of one stream must be processed one after the other (its tracker is sequential).
        ``in_place`` writes the corrected eyes into ``frame_rgb`` (see :meth:`Corrector.process`)."""
        loop = asyncio.get_running_loop()
        self._preparing += 1
        try:
            prepared = await loop.run_in_executor(self.pool, corrector.prepare, frame_rgb, settings, timestamp_s)
        except Exception as err:  # fail open: the call goes on with this frame as it came
            self.health.report("prepare", err)
            return frame_rgb, None
        finally:
            self._preparing -= 1
            self._wake.set()
        self._observe_stages(prepared.telemetry.timings_ms)
        outputs: NetOutputs | None = None
        net_ms = 0.0
        if prepared.batch:
            outputs, net_ms = await self._network(prepared)
        try:
            out, telemetry = await loop.run_in_executor(
                self.pool, functools.partial(corrector.finish, prepared, outputs, net_ms=net_ms, in_place=in_place)
            )
        except Exception as err:
            self.health.report("finish", err)
            return frame_rgb, None
        for stage in ("net", "paste"):
            if stage in telemetry.timings_ms:
                self.metrics.stage_seconds.labels(stage=stage).observe(telemetry.timings_ms[stage] / 1000.0)
        return out, telemetry

    def _observe_stages(self, timings_ms: dict[str, float]) -> None:
        for stage in ("face", "pose", "strip"):
            if stage in timings_ms:
                self.metrics.stage_seconds.labels(stage=stage).observe(timings_ms[stage] / 1000.0)

    async def _network(self, prepared: PreparedFrame) -> tuple[NetOutputs | None, float]:
        self.start()
        job = _Job(prepared, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._wake.set()
        return await job.done

    # --- the batching loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            # Frames still in prepare would otherwise wait a whole network call: give them the window to join.
            deadline = loop.time() + self.window_s
            while self._preparing > 0 and self._queued_strips() < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)
            jobs = self._take()
            await self._run_batch(jobs)
            if self._queue:
                self._wake.set()

    def _queued_strips(self) -> int:
        return sum(job.prepared.batch for job in self._queue)

    def _take(self) -> list[_Job]:
        """The oldest jobs whose strips fit in one call (always at least one: a frame with more faces than
        ``max_batch`` is run alone, and the backend chunks it)."""
        taken: list[_Job] = []
        total = 0
        while self._queue:
            size = self._queue[0].prepared.batch
            if taken and total + size > self.max_batch:
                break
            taken.append(self._queue.pop(0))
            total += size
        return taken

    async def _run_batch(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        strips, targets, strengths, sizes = batch_inputs([job.prepared for job in jobs])
        start = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._net, self.backend.run, strips, targets, strengths)
            parts: list[NetOutputs | None] = list(outputs.split(sizes))
        except Exception as err:  # the backend failed or died: these frames (and later ones, if it stays down) pass
            self.health.report("net", err)
            parts = [None] * len(jobs)
        # Every frame of the batch waited for the whole call: that is its network time.
        net_ms = (time.perf_counter() - start) * 1000.0
        self.metrics.batch_size.observe(int(strips.shape[0]))
        for job, part in zip(jobs, parts, strict=True):
            if not job.done.done():  # a session closed mid-call cancels its wait
                job.done.set_result((part, net_ms))
