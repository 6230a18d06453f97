"""Inference backends for the redirector: PyTorch, ONNX Runtime and TensorRT behind one interface."""

from engine.runtime.backends.base import Backend, NetOutputs, default_cache_dir, model_fingerprint
from engine.runtime.backends.onnx_backend import OnnxRuntimeBackend, cached_onnx
from engine.runtime.backends.select import BACKEND_NAMES, MIRROR_DEFAULT, BackendName, load_model, select_backend
from engine.runtime.backends.tensorrt_backend import TensorRTBackend, tensorrt_available
from engine.runtime.backends.torch_backend import TorchBackend

__all__ = [
    "BACKEND_NAMES",
    "MIRROR_DEFAULT",
    "Backend",
    "BackendName",
    "NetOutputs",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchBackend",
    "cached_onnx",
    "default_cache_dir",
    "load_model",
    "model_fingerprint",
    "select_backend",
    "tensorrt_available",
]
