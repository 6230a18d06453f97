"""Stand-in networks with known outputs, for testing the corrector without a trained redirector."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engine.runtime.backends.base import Backend, Float32Array, NetOutputs


class FakeBackend(Backend):
    """Returns a constant flow (strip pixels), zero residual and a fixed gaze estimate; records batch sizes."""

    name = "fake"

    def __init__(self, flow_xy: tuple[float, float] = (0.0, 0.0), gaze_deg: tuple[float, float] = (0.0, 0.0)) -> None:
        super().__init__()
        self.flow_xy = flow_xy
        self.gaze_deg = gaze_deg
        self.batches: list[int] = []
        self.strengths: list[list[float]] = []

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        b, _, h, w = strips.shape
        self.batches.append(b)
        self.strengths.append(strength.tolist())
        flow = np.empty((b, 2, h, w), np.float32)
        flow[:, 0] = self.flow_xy[0]
        flow[:, 1] = self.flow_xy[1]
        gaze = np.tile(np.radians(np.array(self.gaze_deg, np.float32)), (b, 1))
        return NetOutputs(
            strip_out=strips.copy(),
            flow=flow,
            residual=np.zeros((b, 3, h, w), np.float32),
            mask=np.full((b, 1, h, w), 0.5, np.float32),
            gaze_estimate=gaze.astype(np.float32),
            head_estimate=np.zeros((b, 2), np.float32),
        )


def outside_boxes(shape: tuple[int, ...], boxes: list[tuple[int, int, int, int]]) -> NDArray[np.bool_]:
    """Boolean ``H x W`` mask of the pixels outside every box (x0, y0, x1, y1), exclusive ends."""
    outside = np.ones(shape[:2], dtype=bool)
    for x0, y0, x1, y1 in boxes:
        outside[y0:y1, x0:x1] = False
    return outside
