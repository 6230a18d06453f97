"""The redirector in PyTorch: float32 on the CPU; fp16 and one CUDA graph per batch size on a GPU.

The CUDA path follows the documented CUDA-graph recipe (warm up on a side stream, capture with static input and
output tensors, replay) and falls back to eager execution, with a warning, if a capture fails. Our CPU machines
cannot run it: it was checked on an H200 (``tests/runtime/backends/test_torch_backend.py``'s CUDA tests and
``bench/gpu_runtime.py``, which also compares every precision with float32).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from engine.model.export import OUTPUT_NAMES, check_model_geometry
from engine.model.redirector import Redirector
from engine.runtime.backends.base import Backend, Float32Array, NetOutputs, run_in_chunks
from engine.strip import DEFAULT_STRIP, StripGeometry

logger = logging.getLogger(__name__)

_WARMUP_RUNS = 3  # eager runs before a capture, so lazy initialisation (cuDNN autotuning) is not recorded


class _Graph:
    """One captured CUDA graph: its inputs and outputs are views of one flat device buffer each.

    One flat input means one host-to-device copy per call (from a pinned staging buffer), one flat output one
    device-to-host copy: with six outputs and three inputs, separate pageable copies cost as much as the network.
    """

    def __init__(
        self,
        graph: torch.cuda.CUDAGraph,
        flat_in: Tensor,
        inputs: tuple[Tensor, Tensor, Tensor],
        flat_out: Tensor,
        outputs: tuple[Tensor, ...],
    ):
        self.graph = graph
        self.flat_in = flat_in
        self.inputs = inputs
        self.flat_out = flat_out
        self.outputs = outputs
        # Reused: every call synchronises before returning, so the previous upload has left it.
        self.staging = torch.empty(flat_in.shape, dtype=flat_in.dtype, pin_memory=True)
        self._staged = tuple(_views(self.staging, [t.shape for t in inputs]))

    def stage(self, arrays: tuple[Float32Array, Float32Array, Float32Array]) -> None:
        """Copy host inputs into the pinned staging buffer (a plain memcpy) and upload it in one transfer."""
        for view, array in zip(self._staged, arrays, strict=True):
            view.numpy()[...] = array
        self.flat_in.copy_(self.staging, non_blocking=True)

    def fetch(self) -> tuple[Float32Array, ...]:
        """The outputs of the last replay as host arrays (views of one fresh pinned buffer, kept alive by them)."""
        host = torch.empty(self.flat_out.shape, dtype=self.flat_out.dtype, pin_memory=True)
        host.copy_(self.flat_out, non_blocking=True)
        torch.cuda.current_stream(self.flat_out.device).synchronize()
        return tuple(view.numpy() for view in _views(host, [t.shape for t in self.outputs]))


def _views(flat: Tensor, shapes: list[torch.Size]) -> list[Tensor]:
    """Consecutive views of a flat tensor with the given shapes."""
    views, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append(flat[start : start + size].view(shape))
        start += size
    if start != flat.numel():
        raise ValueError(f"shapes {shapes} hold {start} values, the buffer {flat.numel()}")
    return views


Precision = Literal["fp32", "amp", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "amp", "fp16")


class TorchBackend(Backend):
    """Runs a :class:`Redirector` with PyTorch on ``device``.

    ``precision`` on CUDA (default ``amp``):

    * ``amp``: fp16 autocast (convolutions in fp16, normalisation and the angle arithmetic in float32), with the
      convolution and linear weights cast to fp16 once, so a replay does not cast every weight again (the
      results are those of autocast on float32 weights, which casts the same weights the same way);
    * ``fp16``: the whole network in fp16 (fewer casts between layers; the angles lose about 1e-3 rad);
    * ``fp32``: no casts at all.

    ``cuda_graphs`` (default on) captures one graph per batch size up to ``max_batch`` the first time that size
    is seen, which removes the Python and launch overhead that dominates a network this small; its input and
    output each live in one flat buffer, so a call is one upload and one download. ``channels_last`` runs the
    convolutions in NHWC. Larger batches run in chunks of ``max_batch``. On the CPU it is float32 and eager.
    ``num_threads`` sets torch's intra-op thread count (a process-wide setting), worth keeping at 1-2 when several
    streams share a CPU. :attr:`model` stays the float32 model that was passed in.
    """

    name = "torch"

    def __init__(
        self,
        model: Redirector,
        device: str | torch.device = "cpu",
        *,
        precision: Precision | None = None,
        cuda_graphs: bool | None = None,
        channels_last: bool = False,
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
        self.precision: Precision = precision if precision is not None else ("amp" if cuda else "fp32")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.cuda_graphs = cuda if cuda_graphs is None else cuda_graphs
        if (self.precision != "fp32" or self.cuda_graphs or channels_last) and not cuda:
            raise ValueError("fp16, CUDA graphs and channels_last need a CUDA device")
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be positive, got {num_threads}")
            torch.set_num_threads(num_threads)
        self.max_batch = max_batch
        self.channels_last = channels_last
        self.model = model.to(self.device).eval()
        self._net = _prepared(self.model, self.precision, channels_last)
        self.name = f"torch-{self.device.type}" + ("" if self.precision == "fp32" else f"-{self.precision}")
        self._graphs: dict[int, _Graph | None] = {}  # None: capture failed, run eagerly
        # Graph replay writes into shared static tensors, so calls must not interleave.
        self._lock = threading.Lock()

    def _forward(self, strips: Tensor, target_gaze: Tensor, strength: Tensor) -> tuple[Tensor, ...]:
        if self.channels_last:
            strips = strips.contiguous(memory_format=torch.channels_last)
        if self.precision == "fp16":
            out = self._net(strips.half(), target_gaze.half(), strength.half())
        else:
            with torch.autocast(
                self.device.type, dtype=torch.float16, enabled=self.precision == "amp", cache_enabled=False
            ):
                out = self._net(strips, target_gaze, strength)
        return tuple(t.float().contiguous() for t in out)

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        with self._lock, torch.inference_mode():
            return run_in_chunks(self._run_chunk, self.max_batch, strips, target_gaze, strength)

    def _run_chunk(
        self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array
    ) -> tuple[Float32Array, ...]:
        graph = self._graph_for(strips.shape[0]) if self.cuda_graphs else None
        if graph is None:
            inputs = (torch.from_numpy(a).to(self.device, non_blocking=True) for a in (strips, target_gaze, strength))
            # .cpu() waits for the stream, so the copies are complete when it returns.
            return tuple(np.asarray(t.cpu().numpy(), dtype=np.float32) for t in self._forward(*inputs))
        graph.stage((strips, target_gaze, strength))
        graph.graph.replay()
        return graph.fetch()

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
        shapes = [torch.Size((batch, 3, geo.height, geo.width)), torch.Size((batch, 2)), torch.Size((batch,))]
        try:
            flat_in = torch.empty(sum(math.prod(shape) for shape in shapes), device=self.device)
            strips, gaze, strength = _views(flat_in, shapes)
            strips.fill_(0.5)
            gaze.zero_()
            strength.fill_(1.0)
            side = torch.cuda.Stream(device=self.device)  # type: ignore[no-untyped-call]
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(_WARMUP_RUNS):
                    self._forward(strips, gaze, strength)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # Capture on the warm-up stream: cuDNN's per-stream workspaces then already exist, instead of being
            # allocated mid-capture on a fresh stream.
            with torch.cuda.graph(graph, stream=side):
                flat_out = torch.cat([t.reshape(-1) for t in self._forward(strips, gaze, strength)])
        except RuntimeError as err:  # a capture can fail on ops that synchronise; eager still works
            logger.warning("CUDA graph capture failed for batch %d, running it eagerly: %s", batch, err)
            return None
        outputs = tuple(_views(flat_out, [_output_shape(name, batch, geo) for name in OUTPUT_NAMES]))
        logger.info("captured a CUDA graph for batch %d (%s)", batch, self.precision)
        return _Graph(graph, flat_in, (strips, gaze, strength), flat_out, outputs)


def _output_shape(name: str, batch: int, geometry: StripGeometry) -> torch.Size:
    """The shape of one of the network's outputs (:data:`OUTPUT_NAMES`) for a batch."""
    channels = {"strip_out": 3, "flow": 2, "residual": 3, "mask": 1}
    if name in channels:
        return torch.Size((batch, channels[name], geometry.height, geometry.width))
    return torch.Size((batch, 2))


def _prepared(model: Redirector, precision: Precision, channels_last: bool) -> nn.Module:
    """The module the backend runs: ``model`` itself for float32, else a copy with fp16 weights.

    Under ``amp`` only the convolution and linear weights become fp16 (what autocast would cast them to on every
    call); the normalisation layers keep float32, as autocast runs them.
    """
    if precision == "fp32" and not channels_last:
        return model
    net = copy.deepcopy(model)
    if precision == "fp16":
        net.half()
    elif precision == "amp":
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                module.half()
    if channels_last:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net.eval()
