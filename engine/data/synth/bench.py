"""Throughput of the synthetic renderer (strips per second), as ``mirada synth bench`` reports it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.data.synth.cache import CachedPairs
from engine.data.synth.sampler import SynthConfig, SynthSampler


@dataclass(frozen=True)
class BenchResult:
    """Measured renderer throughput."""

    source: str  # "renderer" or "cache"
    device: str
    compiled: bool
    batch_size: int
    batches: int
    strips: int
    seconds: float

    @property
    def strips_per_second(self) -> float:
        """Rendered strips (each pair counts as two) per second."""
        return self.strips / self.seconds


def bench(
    config: SynthConfig,
    device: str,
    batch_size: int = 256,
    batches: int = 5,
    warmup: int = 1,
    compiled: bool = False,
) -> BenchResult:
    """Render ``warmup`` untimed then ``batches`` timed pair batches and time them (CUDA synchronised).

    With ``compiled``, the warm-up also pays for ``torch.compile`` (untimed, like any warm-up).
    """
    sampler = SynthSampler(config, seed=0, batch_size=batch_size, device=device, compiled=compiled)
    dev = torch.device(device)
    for i in range(warmup):
        sampler.pairs(i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for i in range(batches):
        sampler.pairs(warmup + i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    used = sampler.renderer.compiled  # False if compiling failed and it fell back to eager
    return BenchResult("renderer", device, used, batch_size, batches, 2 * batch_size * batches, seconds)


def bench_cache(path: Path, device: str, batch_size: int = 256, batches: int = 20) -> BenchResult:
    """Time drawing ``batches`` pair batches from a pair cache onto ``device`` (loading excluded)."""
    cached = CachedPairs(path, batch_size, seed=0, device=device)
    dev = torch.device(device)
    cached.pairs(0)
    start = time.perf_counter()
    for i in range(batches):
        cached.pairs(1 + i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    return BenchResult("cache", device, False, batch_size, batches, 2 * batch_size * batches, seconds)
