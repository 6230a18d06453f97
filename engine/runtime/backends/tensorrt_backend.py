"""The redirector as a TensorRT 10 engine (FP16, dynamic batch), the fastest path on an NVIDIA GPU.

TensorRT cannot be installed on the CPU-only machines this project is developed on, so this module imports it
lazily (:func:`tensorrt_available` says whether it can) and has not been run here: it is written against the
TensorRT 10 Python API (name-based I/O tensors, ``build_serialized_network``, ``execute_async_v3``), and
everything it does is logged (every ONNX parser error, every I/O tensor's shape and type) so that a failure on a
GPU machine explains itself. Device buffers are torch CUDA tensors and the engine runs on torch's current CUDA
stream, so no other CUDA Python package is needed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.model.export import INPUT_NAMES, OUTPUT_NAMES
from engine.runtime.backends.base import Backend, Float32Array, NetOutputs, default_cache_dir, run_in_chunks
from engine.strip import DEFAULT_STRIP, StripGeometry

logger = logging.getLogger(__name__)

MAX_BATCH = 32  # the upper end of the dynamic batch profile (faces per call across all streams)
OPT_BATCH = 4  # the batch size TensorRT tunes its kernels for: a few faces per call is the common case
WORKSPACE_BYTES = 1 << 30


def tensorrt_available() -> bool:
    """True if the ``tensorrt`` package is importable and torch sees a CUDA device."""
    return importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


def _import_tensorrt() -> Any:
    """The ``tensorrt`` module (typed as Any: it ships no type information)."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError as err:
        raise RuntimeError("the TensorRT backend needs the tensorrt package (TensorRT 10), not installed here") from err


def _make_logger(trt: Any) -> Any:
    """A TensorRT logger that forwards to Python logging at the matching level."""
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.CRITICAL,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.INFO,
        severity.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):  # type: ignore[misc]  # trt is Any: subclassing it is unchecked by design
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, sev: Any, msg: str) -> None:
            logger.log(levels.get(sev, logging.INFO), "TensorRT: %s", msg)

    return _Logger()


def engine_cache_key(onnx_bytes: bytes, trt_version: str, gpu_name: str, max_batch: int, fp16: bool) -> str:
    """The name of a compiled engine: it is only valid for the same model, TensorRT version, GPU and profile."""
    digest = hashlib.sha256(onnx_bytes)
    digest.update(f"|trt={trt_version}|gpu={gpu_name}|max_batch={max_batch}|fp16={fp16}".encode())
    return digest.hexdigest()[:24]


def profile_shapes(
    inputs: list[tuple[str, tuple[int, ...]]], max_batch: int, opt_batch: int = OPT_BATCH
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shapes of each input for a dynamic-batch optimisation profile.

    ``inputs`` are (name, shape) with the batch axis first (-1 when dynamic); every other axis must be static.
    The profile covers batches 1 to ``max_batch`` and is tuned for ``min(opt_batch, max_batch)``.
    """
    if max_batch < 1 or opt_batch < 1:
        raise ValueError(f"max_batch and opt_batch must be positive, got {max_batch}, {opt_batch}")
    opt = min(opt_batch, max_batch)
    shapes = {}
    for name, shape in inputs:
        if not shape:
            raise ValueError(f"input {name} has no batch axis")
        per_sample = tuple(int(d) for d in shape[1:])
        if any(d < 1 for d in per_sample):
            raise ValueError(f"input {name} has a dynamic axis besides the batch: {tuple(shape)}")
        shapes[name] = ((1, *per_sample), (opt, *per_sample), (max_batch, *per_sample))
    return shapes


def build_engine(trt: Any, trt_logger: Any, onnx_bytes: bytes, *, max_batch: int, fp16: bool, source: str) -> bytes:
    """Parse an ONNX model and build a serialised engine with a dynamic batch profile (1 to ``max_batch``).

    Every parser error is logged (and a failed parse raises); so are the messages of a successful parse and the
    profile of every input, so that a build on a machine nobody can watch explains itself in the log.
    """
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(onnx_bytes):
        for i in range(parser.num_errors):
            logger.error("ONNX parser error %d: %s", i, parser.get_error(i))
        raise RuntimeError(f"TensorRT could not parse {source} ({parser.num_errors} errors, logged)")
    for i in range(parser.num_errors):  # a successful parse can still report problems worth seeing
        logger.warning("ONNX parser message %d: %s", i, parser.get_error(i))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        if not builder.platform_has_fast_fp16:
            logger.warning("this GPU has no fast FP16; building anyway with FP16 allowed")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    shapes = profile_shapes([(t.name, tuple(int(d) for d in t.shape)) for t in inputs], max_batch)
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
        logger.info("profile %s: min %s, opt %s, max %s", name, low, opt, high)
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        logger.info("network output %s: %s %s", tensor.name, tensor.dtype, tuple(tensor.shape))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the TensorRT errors logged above)")
    return bytes(serialized)


def check_engine_io(trt: Any, engine: Any) -> None:
    """Log every I/O tensor of ``engine`` (name, type, shape) and raise unless they are the redirector's, by name."""
    inputs: list[str] = []
    outputs: list[str] = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        (inputs if is_input else outputs).append(name)
        logger.info(
            "engine %s %s: %s %s",
            "input" if is_input else "output",
            name,
            engine.get_tensor_dtype(name),
            tuple(engine.get_tensor_shape(name)),
        )
    if set(inputs) != set(INPUT_NAMES) or set(outputs) != set(OUTPUT_NAMES):
        raise RuntimeError(
            f"engine I/O {inputs} -> {outputs} does not match the redirector's {INPUT_NAMES} -> {OUTPUT_NAMES}"
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: a concurrent reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


class TensorRTBackend(Backend):
    """Runs an ONNX export of the redirector as a TensorRT engine on the current CUDA device.

    The engine is built once (FP16 allowed, one optimisation profile for batches 1..``max_batch``) and cached
    in ``cache_dir`` under :func:`engine_cache_key`; later runs deserialise it in about a second instead of
    building for minutes. Larger batches are run in chunks. Calls are serialised with a lock because one
    execution context is not safe to use from two threads at once.
    """

    name = "tensorrt"

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        cache_dir: Path | None = None,
        max_batch: int = MAX_BATCH,
        fp16: bool = True,
        geometry: StripGeometry = DEFAULT_STRIP,
    ) -> None:
        super().__init__(geometry)
        if not torch.cuda.is_available():
            raise RuntimeError("the TensorRT backend needs a CUDA device, and torch sees none")
        if max_batch < 1:
            raise ValueError(f"max_batch must be positive, got {max_batch}")
        self._trt = _import_tensorrt()
        self.onnx_path = Path(onnx_path)
        self.max_batch = max_batch
        self.fp16 = fp16
        self.device = torch.device("cuda", torch.cuda.current_device())
        self._logger = _make_logger(self._trt)
        onnx_bytes = self.onnx_path.read_bytes()
        gpu = torch.cuda.get_device_name(self.device)
        key = engine_cache_key(onnx_bytes, str(self._trt.__version__), gpu, max_batch, fp16)
        directory = default_cache_dir() if cache_dir is None else cache_dir
        self.engine_path = directory / f"redirector-{key}.engine"
        serialized = self._load_or_build(onnx_bytes)
        self._runtime = self._trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(serialized)
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialise the engine {self.engine_path}")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise RuntimeError("TensorRT could not create an execution context")
        self._check_io()
        self._lock = threading.Lock()
        self.name = f"tensorrt-{'fp16' if fp16 else 'fp32'}"

    # --- building --------------------------------------------------------------------------------------

    def _load_or_build(self, onnx_bytes: bytes) -> bytes:
        if self.engine_path.is_file():
            logger.info("loading the cached TensorRT engine %s", self.engine_path)
            return self.engine_path.read_bytes()
        logger.info("building a TensorRT engine from %s (minutes, once per model, GPU and version)", self.onnx_path)
        serialized = self._build(onnx_bytes)
        write_atomically(self.engine_path, serialized)
        logger.info("cached the TensorRT engine at %s", self.engine_path)
        return serialized

    def _build(self, onnx_bytes: bytes) -> bytes:
        return build_engine(
            self._trt, self._logger, onnx_bytes, max_batch=self.max_batch, fp16=self.fp16, source=str(self.onnx_path)
        )

    def _check_io(self) -> None:
        check_engine_io(self._trt, self._engine)

    # --- inference -------------------------------------------------------------------------------------

    def _torch_dtype(self, name: str) -> torch.dtype:
        np_dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name)))
        return torch.from_numpy(np.empty(0, dtype=np_dtype)).dtype

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        with self._lock, torch.inference_mode():
            return run_in_chunks(self._run_chunk, self.max_batch, strips, target_gaze, strength)

    def _run_chunk(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> list[Float32Array]:
        ctx = self._context
        stream = torch.cuda.current_stream(self.device)
        keep: list[torch.Tensor] = []  # device buffers must outlive the asynchronous execution
        for name, value in zip(INPUT_NAMES, (strips, target_gaze, strength), strict=True):
            tensor = torch.from_numpy(value).to(self.device, dtype=self._torch_dtype(name)).contiguous()
            if not ctx.set_input_shape(name, tuple(tensor.shape)):
                raise RuntimeError(f"TensorRT refused the shape {tuple(tensor.shape)} for input {name}")
            ctx.set_tensor_address(name, tensor.data_ptr())
            keep.append(tensor)
        outputs: dict[str, torch.Tensor] = {}
        for name in OUTPUT_NAMES:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"TensorRT left output {name} with an unresolved shape {shape}")
            out = torch.empty(shape, dtype=self._torch_dtype(name), device=self.device)
            ctx.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT errors logged above)")
        # .cpu() is enqueued on the same stream, so it waits for the engine before copying.
        result = [np.asarray(outputs[name].float().cpu().numpy(), dtype=np.float32) for name in OUTPUT_NAMES]
        del keep
        return result

    def close(self) -> None:
        """Free the execution context, engine and runtime (in that order, as TensorRT requires)."""
        for attr in ("_context", "_engine", "_runtime"):
            if hasattr(self, attr):
                delattr(self, attr)
