"""Stand-in networks with known, visible outputs, so the service's tests see whether correction happened."""

from __future__ import annotations

import threading

import numpy as np

from engine.runtime.backends.base import Backend, Float32Array, NetOutputs


class BrightEyesBackend(Backend):
    """Makes the eye regions visibly different and reports a fixed gaze.

    Through the warp, which the corrector always applies: a backward flow of ``shift_px`` strip pixels down,
    so skin from below each eye is drawn over it. Also a residual of +``lift`` under a full mask, which shows
    where settings ask for the residual (``residual_gain`` > 0; the default pastes the warp alone).

    Records the batch size of every call; ``fail`` makes calls raise (a backend that died).
    """

    name = "bright-eyes"

    def __init__(
        self,
        lift: float = 0.6,
        gaze_deg: tuple[float, float] = (2.0, -3.0),
        delay_s: float = 0.0,
        shift_px: float = 24.0,
    ) -> None:
        super().__init__()
        self.lift = lift
        self.shift_px = shift_px
        self.gaze_deg = gaze_deg
        self.delay_s = delay_s
        self.fail = False
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        with self._lock:
            self.batches.append(int(strips.shape[0]))
        if self.fail:
            raise RuntimeError("backend died (test)")
        b, _, h, w = strips.shape
        gaze = np.tile(np.radians(np.array(self.gaze_deg, np.float32)), (b, 1))
        return NetOutputs(
            strip_out=np.clip(strips + self.lift, 0.0, 1.0),
            flow=np.stack((np.zeros((b, h, w), np.float32), np.full((b, h, w), self.shift_px, np.float32)), axis=1),
            residual=np.full((b, 3, h, w), self.lift, np.float32),
            mask=np.ones((b, 1, h, w), np.float32),
            gaze_estimate=gaze.astype(np.float32),
            head_estimate=np.zeros((b, 2), np.float32),
        )
