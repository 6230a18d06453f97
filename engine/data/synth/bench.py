"""Throughput of the synthetic renderer (strips per second), as ``mirada synth bench`` reports it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from engine.data.synth.sampler import SynthConfig, SynthSampler


@dataclass(frozen=True)
class BenchResult:
    """Measured renderer throughput."""

    device: str
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
) -> BenchResult:
    """Render ``warmup`` untimed then ``batches`` timed pair batches and time them (CUDA synchronised)."""
    sampler = SynthSampler(config, seed=0, batch_size=batch_size, device=device)
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
    return BenchResult(device, batch_size, batches, 2 * batch_size * batches, seconds)
