"""The real-face benchmark's fold meter counts exactly the folded pixel squares of the flows it passes on."""

from __future__ import annotations

import numpy as np

from bench.real_iris_move import FoldMeter
from engine.runtime.backends.base import Backend, Float32Array, NetOutputs


class _FoldingBackend(Backend):
    """Returns a flow that mirrors columns 0-3 of each strip (a fold there) and is still elsewhere."""

    name = "folding"

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        n, _, h, w = strips.shape
        flow = np.zeros((n, 2, h, w), np.float32)
        flow[:, 0, :, :4] = -2.0 * np.arange(4, dtype=np.float32)  # x -> -x over the first four columns
        zeros = np.zeros((n, 2), np.float32)
        return NetOutputs(strips, flow, np.zeros_like(strips), np.zeros((n, 1, h, w), np.float32), zeros, zeros)


def test_the_fold_meter_counts_the_folded_squares_and_passes_the_outputs_on() -> None:
    inner = _FoldingBackend()
    meter = FoldMeter(inner)
    h, w = inner.geometry.height, inner.geometry.width
    strips = np.random.default_rng(0).random((2, 3, h, w), dtype=np.float32)
    out = meter.run(strips, np.zeros((2, 2), np.float32), np.ones(2, np.float32))
    np.testing.assert_array_equal(out.strip_out, strips)
    assert meter.name == "folding"
    # three squares per row fold (between columns 0-1, 1-2, 2-3); the square between 3 and 4 stretches (det 7)
    assert meter.folded == 2 * (h - 1) * 3
    assert meter.squares == 2 * (h - 1) * (w - 1)
    assert meter.folded_percent == 100.0 * 3 / (w - 1)
    meter.run(strips[:1], np.zeros((1, 2), np.float32), np.ones(1, np.float32))
    assert meter.squares == 3 * (h - 1) * (w - 1)
