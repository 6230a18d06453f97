"""The redirector in PyTorch: float32 on the CPU; fp16 autocast and one CUDA graph per batch size on a GPU.

The CUDA path cannot be exercised on the CPU-only machines this project is built on; it is written to the
documented CUDA-graph recipe (warm up on a side stream, capture with static input and output tensors, replay)
and falls back to eager execution, with a warning, if a capture fails.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch
from torch import Tensor

from engine.model.export import check_model_geometry
from engine.model.redirector import Redirector
from engine.runtime.backends.base import Backend, Float32Array, NetOutputs, run_in_chunks
from engine.strip import DEFAULT_STRIP, StripGeometry

logger = logging.getLogger(__name__)

_WARMUP_RUNS = 3  # eager runs before a capture, so lazy initialisation (cuDNN autotuning) is not recorded


class _Graph:
    """One captured CUDA graph with its static input and output tensors."""

    def __init__(self, graph: torch.cuda.CUDAGraph, inputs: tuple[Tensor, Tensor, Tensor], outputs: tuple[Tensor, ...]):
        self.graph = graph
        self.inputs = inputs
        self.outputs = outputs


class TorchBackend(Backend):
    """Runs a :class:`Redirector` with PyTorch on ``device``.

    On CUDA, ``half`` (default on) runs under fp16 autocast (convolutions in fp16, the angle arithmetic in
    float32), and ``cuda_graphs`` (default on) captures one graph per batch size up to ``max_batch`` the first
    time that size is seen, which removes the Python and launch overhead that dominates a network this small.
    Larger batches run in chunks of ``max_batch``. On the CPU both are off. ``num_threads`` sets torch's
    intra-op thread count (a process-wide setting), worth keeping at 1-2 when several streams share a CPU.
    """

    name = "torch"

    def __init__(
        self,
        model: Redirector,
        device: str | torch.device = "cpu",
        *,
        half: bool | None = None,
        cuda_graphs: bool | None = None,
        max_batch: int = 32,
        num_threads: int | None = None,
        geometry: StripGeometry = DEFAULT_STRIP,
    ) -> None:
        super().__init__(geometry)
        check_model_geometry(model, geometry)
        if max_batch < 1:
            raise ValueError(f"max_batch must be positive, got {max_batch}")
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if cuda and not torch.cuda.is_available():
            raise RuntimeError("TorchBackend on CUDA needs a CUDA device, and torch sees none")
        self.half = cuda if half is None else half
        self.cuda_graphs = cuda if cuda_graphs is None else cuda_graphs
        if (self.half or self.cuda_graphs) and not cuda:
            raise ValueError("half precision and CUDA graphs need a CUDA device")
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be positive, got {num_threads}")
            torch.set_num_threads(num_threads)
        self.max_batch = max_batch
        self.model = model.to(self.device).eval()
        self.name = f"torch-{self.device.type}" + ("-fp16" if self.half else "")
        self._graphs: dict[int, _Graph | None] = {}  # None: capture failed, run eagerly
        # Graph replay writes into shared static tensors, so calls must not interleave.
        self._lock = threading.Lock()

    def _forward(self, strips: Tensor, target_gaze: Tensor, strength: Tensor) -> tuple[Tensor, ...]:
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half, cache_enabled=False):
            out = self.model(strips, target_gaze, strength)
        return tuple(t.float() for t in out)

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        with self._lock, torch.inference_mode():
            return run_in_chunks(self._run_chunk, self.max_batch, strips, target_gaze, strength)

    def _run_chunk(
        self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array
    ) -> tuple[Float32Array, ...]:
        inputs = tuple(torch.from_numpy(a) for a in (strips, target_gaze, strength))
        graph = self._graph_for(strips.shape[0]) if self.cuda_graphs else None
        if graph is None:
            s, g, k = (t.to(self.device, non_blocking=True) for t in inputs)
            outputs = self._forward(s, g, k)
        else:
            for static, value in zip(graph.inputs, inputs, strict=True):
                static.copy_(value, non_blocking=True)
            graph.graph.replay()
            outputs = graph.outputs
        # .cpu() waits for the stream, so the copies are complete before the static outputs are reused.
        return tuple(np.asarray(t.cpu().numpy(), dtype=np.float32) for t in outputs)

    def run_tensors(self, strips: Tensor, target_gaze: Tensor, strength: Tensor) -> tuple[Tensor, ...]:
        """The network on tensors already on :attr:`device` (at most ``max_batch`` strips); outputs stay there.

        For a caller that keeps frames on the GPU (:mod:`engine.runtime.torch_geometry`). The outputs, in
        :data:`engine.model.export.OUTPUT_NAMES` order, are fresh tensors (copies of a graph's static outputs),
        so they survive the next call.
        """
        batch = int(strips.shape[0])
        if not 1 <= batch <= self.max_batch:
            raise ValueError(f"run_tensors takes 1 to {self.max_batch} strips, got {batch}")
        with self._lock, torch.inference_mode():
            graph = self._graph_for(batch) if self.cuda_graphs else None
            if graph is None:
                return self._forward(strips, target_gaze, strength)
            for static, value in zip(graph.inputs, (strips, target_gaze, strength), strict=True):
                static.copy_(value)
            graph.graph.replay()
            return tuple(t.clone() for t in graph.outputs)

    def _graph_for(self, batch: int) -> _Graph | None:
        if batch not in self._graphs:
            self._graphs[batch] = self._capture(batch)
        return self._graphs[batch]

    def _capture(self, batch: int) -> _Graph | None:
        geo = self.geometry
        try:
            static = (
                torch.full((batch, 3, geo.height, geo.width), 0.5, device=self.device),
                torch.zeros((batch, 2), device=self.device),
                torch.ones((batch,), device=self.device),
            )
            side = torch.cuda.Stream(device=self.device)  # type: ignore[no-untyped-call]
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_RUNS):
                    self._forward(*static)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # Capture on the warm-up stream: cuDNN's per-stream workspaces then already exist, instead of being
            # allocated mid-capture on a fresh stream.
            with torch.cuda.graph(graph, stream=side):
                outputs = self._forward(*static)
        except RuntimeError as err:  # a capture can fail on ops that synchronise; eager still works
            logger.warning("CUDA graph capture failed for batch %d, running it eagerly: %s", batch, err)
            return None
        logger.info("captured a CUDA graph for batch %d", batch)
        return _Graph(graph, static, outputs)
