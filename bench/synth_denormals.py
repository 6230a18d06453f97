"""The CPU renderer with denormals flushed on every thread (now) or on the calling thread only (before).

    python bench/synth_denormals.py new     # then: python bench/synth_denormals.py old; alternate a few times

One variant per process (the flag and the compiled code are process state): a compiled sampler at batch 256
pairs, one untimed batch (compilation), then 8 timed ones; prints the median and best strips per second.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator

import torch

import engine.data.synth.sampler as sampler_module
from engine.data.synth.sampler import SynthConfig, SynthSampler


@contextlib.contextmanager
def _calling_thread_only() -> Iterator[None]:
    """What the renderer did before session 5: torch's flag, which reaches the calling thread alone."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=("new", "old"))
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    if args.variant == "old":
        setattr(sampler_module, "flush_denormals", _calling_thread_only)  # noqa: B010 (patch the module global)
    sampler = SynthSampler(SynthConfig(), seed=0, batch_size=256, compiled=True)
    sampler.pairs(0)
    times = []
    for i in range(args.batches):
        start = time.perf_counter()
        sampler.pairs(1 + i)
        times.append(time.perf_counter() - start)
    median, best = 512 / statistics.median(times), 512 / min(times)
    print(f"{args.variant}: median {median:.0f} strips/s, best {best:.0f}")


if __name__ == "__main__":
    main()
