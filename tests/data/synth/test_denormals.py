"""Denormals are flushed on every thread of a parallel kernel inside ``flush_denormals``, and only there."""

from __future__ import annotations

import torch

from engine.data.synth.denormals import flush_denormals, set_flush_denormal_everywhere


def _denormal_products() -> int:
    # 1e-40 is below float32's smallest normal (1.2e-38); two million elements split over every intra-op thread
    x = torch.full((1 << 21,), 1e-30)
    return int(((x * 1e-10) != 0).sum())


def test_every_thread_flushes_inside_the_block_and_none_after() -> None:
    assert _denormal_products() == 1 << 21
    with flush_denormals():
        # torch.set_flush_denormal alone would flush only the calling thread's share of the elements
        assert _denormal_products() == 0
    assert _denormal_products() == 1 << 21


def test_the_openmp_threads_are_reached_here() -> None:
    try:
        assert set_flush_denormal_everywhere(True)
        assert _denormal_products() == 0
    finally:
        set_flush_denormal_everywhere(False)
