"""The one interface every inference backend implements: a batch of strips in, the redirector's outputs out.

Backends take and return numpy arrays on the host, so the corrector does not care where the network runs;
one backend is shared by all streams (one batched call per frame covers all of a frame's faces).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from engine.model.export import OUTPUT_NAMES
from engine.model.redirector import Redirector
from engine.strip import DEFAULT_STRIP, StripGeometry

Float32Array = NDArray[np.float32]


@dataclass(frozen=True)
class NetOutputs:
    """The redirector's outputs for a batch of B strips, as float32 host arrays (see
    :class:`engine.model.redirector.RedirectorOutput`).

    ``strip_out`` B x 3 x H x W; ``flow`` B x 2 x H x W backward flow in strip pixels (x, y); ``residual``
    B x 3 x H x W; ``mask`` B x 1 x H x W; ``gaze_estimate`` and ``head_estimate`` B x 2 (pitch, yaw) radians of
    the input strips.
    """

    strip_out: Float32Array
    flow: Float32Array
    residual: Float32Array
    mask: Float32Array
    gaze_estimate: Float32Array
    head_estimate: Float32Array

    @staticmethod
    def from_sequence(arrays: list[NDArray[np.floating[Any]]] | tuple[NDArray[np.floating[Any]], ...]) -> NetOutputs:
        """Build from arrays in :data:`engine.model.export.OUTPUT_NAMES` order (the ONNX output order)."""
        if len(arrays) != len(OUTPUT_NAMES):
            raise ValueError(f"expected {len(OUTPUT_NAMES)} outputs {OUTPUT_NAMES}, got {len(arrays)}")
        as32 = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
        return NetOutputs(*as32)

    @property
    def batch(self) -> int:
        """Number of strips."""
        return int(self.flow.shape[0])

    def arrays(self) -> tuple[Float32Array, ...]:
        """The six arrays in :data:`engine.model.export.OUTPUT_NAMES` order."""
        return (self.strip_out, self.flow, self.residual, self.mask, self.gaze_estimate, self.head_estimate)

    def __getitem__(self, index: slice) -> NetOutputs:
        """The outputs of a slice of the batch (views, not copies)."""
        if not isinstance(index, slice):
            raise TypeError(f"NetOutputs can only be sliced (outputs[a:b]), got {type(index).__name__}")
        return NetOutputs(*(a[index] for a in self.arrays()))

    @staticmethod
    def concat(parts: Sequence[NetOutputs]) -> NetOutputs:
        """One batch from several, in order (the inverse of :meth:`split`).

        A batching scheduler rarely needs it (it concatenates the *inputs* and splits the outputs), but tests and
        backends that run in chunks do.
        """
        if not parts:
            raise ValueError("NetOutputs.concat needs at least one batch (the strip size of an empty list is unknown)")
        if len(parts) == 1:
            return parts[0]
        columns = zip(*(p.arrays() for p in parts), strict=True)
        return NetOutputs.from_sequence([np.concatenate(arrays) for arrays in columns])

    def split(self, sizes: Sequence[int]) -> list[NetOutputs]:
        """Cut the batch into consecutive parts of ``sizes`` strips (zeros allowed; they must add up to the batch).

        This is how a scheduler that ran one call for many streams hands each stream its own outputs:
        ``outputs.split([len(p.strips) for p in prepared])``. The parts are views of this batch.
        """
        if any(size < 0 for size in sizes):
            raise ValueError(f"split sizes must not be negative, got {list(sizes)}")
        if sum(sizes) != self.batch:
            raise ValueError(f"split sizes {list(sizes)} add up to {sum(sizes)}, but the batch has {self.batch} strips")
        parts = []
        start = 0
        for size in sizes:
            parts.append(self[start : start + size])
            start += size
        return parts


class Backend(ABC):
    """Runs the redirector on batches of strips. Implementations must be safe to share between streams."""

    #: Short name for logs and telemetry.
    name: str = "backend"

    def __init__(self, geometry: StripGeometry = DEFAULT_STRIP) -> None:
        self.geometry = geometry

    @abstractmethod
    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        """Run a checked, non-empty batch."""

    def run(
        self,
        strips: NDArray[np.floating[Any]],
        target_gaze: NDArray[np.floating[Any]],
        strength: NDArray[np.floating[Any]],
    ) -> NetOutputs:
        """Redirect ``strips`` B x 3 x H x W (float32 in [0, 1]) toward ``target_gaze`` B x 2 (pitch, yaw radians)
        with per-strip ``strength`` B in [0, 1]. An empty batch returns empty outputs without running."""
        s, g, k = check_inputs(strips, target_gaze, strength, self.geometry)
        if s.shape[0] == 0:
            return empty_outputs(self.geometry)
        return self._run(s, g, k)

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to release
        """Release what the backend holds (sessions, engines, GPU memory)."""


ChunkRunner = Callable[[Float32Array, Float32Array, Float32Array], Sequence[Float32Array]]


def run_in_chunks(
    run_chunk: ChunkRunner, max_batch: int, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array
) -> NetOutputs:
    """``run_chunk`` (outputs in :data:`OUTPUT_NAMES` order) over batches of at most ``max_batch``, joined.

    For backends whose engine or graphs take a bounded batch; one chunk (the usual case) is not copied again.
    """
    parts = [
        NetOutputs.from_sequence(
            list(run_chunk(strips[i : i + max_batch], target_gaze[i : i + max_batch], strength[i : i + max_batch]))
        )
        for i in range(0, strips.shape[0], max_batch)
    ]
    return NetOutputs.concat(parts)


def check_inputs(
    strips: NDArray[np.floating[Any]],
    target_gaze: NDArray[np.floating[Any]],
    strength: NDArray[np.floating[Any]],
    geometry: StripGeometry,
) -> tuple[Float32Array, Float32Array, Float32Array]:
    """Check shapes and return contiguous float32 copies (or views) of the three inputs."""
    s = np.ascontiguousarray(strips, dtype=np.float32)
    g = np.ascontiguousarray(target_gaze, dtype=np.float32)
    k = np.ascontiguousarray(strength, dtype=np.float32)
    if s.ndim != 4 or s.shape[1:] != (3, geometry.height, geometry.width):
        raise ValueError(f"strips must be B x 3 x {geometry.height} x {geometry.width}, got {s.shape}")
    batch = s.shape[0]
    if g.shape != (batch, 2):
        raise ValueError(f"target_gaze must be {batch} x 2 (pitch, yaw), got {g.shape}")
    if k.shape != (batch,):
        raise ValueError(f"strength must have shape ({batch},), got {k.shape}")
    return s, g, k


def empty_outputs(geometry: StripGeometry) -> NetOutputs:
    """Outputs of an empty batch."""
    h, w = geometry.height, geometry.width
    z = np.zeros
    return NetOutputs(
        z((0, 3, h, w), np.float32),
        z((0, 2, h, w), np.float32),
        z((0, 3, h, w), np.float32),
        z((0, 1, h, w), np.float32),
        z((0, 2), np.float32),
        z((0, 2), np.float32),
    )


def model_fingerprint(model: Redirector) -> str:
    """A hex digest of the model's class, config and weights (the key of exported and compiled caches: a mirror
    ensemble has the weights of its network, but another graph)."""
    digest = hashlib.sha256(f"{type(model).__qualname__}:{model.config!r}".encode())
    for name, value in sorted(model.state_dict().items()):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where exported ONNX files and TensorRT engines are cached: ``$MIRADA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mirada``, else ``~/.cache/mirada``."""
    explicit = os.environ.get("MIRADA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mirada"
