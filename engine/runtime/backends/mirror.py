"""Mirror ensembling around any backend: every call runs the strips and their mirror images as one batch of 2 B
and averages the two redirections (:mod:`engine.model.mirror`).

It wraps the backend rather than the network, so the shipped ONNX file, the TensorRT engine and the CUDA graphs
stay as they are: each simply sees twice the batch. The merge is a few element-wise operations and one warp of
the B input strips on the host.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.model.decoder import Decoded
from engine.model.mirror import merge_mirrored_batch, mirror_mean_angles, split_halves, with_mirrors
from engine.runtime.backends.base import Backend, Float32Array, NetOutputs

#: Whether the corrector's commands and the service run the mirror ensemble unless told otherwise. Off: on this
#: project's 2-core CPU it takes the corrector from 64 to 39 fps with a p95 frame time of 35 ms, past the 33 ms
#: target (docs/MODEL.md, "Mirror ensemble"), and its cost on a GPU is not measured yet.
MIRROR_DEFAULT = False


class MirroredBackend(Backend):
    """``inner``, with each batch redirected together with its mirror images and the two results averaged.

    On the 1,024 test pairs of ``mirada eval`` it lowers the shipped model's gaze error from 3.25 to 3.09 degrees on
    open eyes and its head error from 2.50 to 2.37 degrees (docs/MODEL.md, "Mirror ensemble"). The network's cost
    doubles, and the merge adds about 0.9 ms a call on the host (batch 1, measured on a 2-core CPU).
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.geometry)
        if isinstance(inner, MirroredBackend):
            raise ValueError("the backend already runs a mirror ensemble")
        self.inner = inner
        self.name = f"{inner.name}+mirror"

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        strip_t = torch.from_numpy(strips)
        both, gaze = with_mirrors(strip_t, torch.from_numpy(target_gaze))
        out = self.inner.run(both.numpy(), gaze.numpy(), np.concatenate((strength, strength)))
        arrays = [torch.from_numpy(a) for a in out.arrays()]
        merged = merge_mirrored_batch(strip_t, Decoded(*arrays[:4]))
        gaze_estimate = mirror_mean_angles(*split_halves(arrays[4]))
        head_estimate = mirror_mean_angles(*split_halves(arrays[5]))
        return NetOutputs.from_sequence([t.numpy() for t in (*merged, gaze_estimate, head_estimate)])

    def close(self) -> None:
        """Close the wrapped backend."""
        self.inner.close()
