"""Choosing an inference backend: the fastest one this machine can run, or the one asked for."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch

from engine.model.mirror import MirrorEnsemble
from engine.model.redirector import Redirector
from engine.runtime.backends.base import Backend
from engine.runtime.backends.onnx_backend import OnnxRuntimeBackend, cached_onnx
from engine.runtime.backends.tensorrt_backend import TensorRTBackend, tensorrt_available
from engine.runtime.backends.torch_backend import TorchBackend
from engine.strip import DEFAULT_STRIP, StripGeometry
from engine.weights import default_onnx, load_default_model

logger = logging.getLogger(__name__)

BackendName = Literal["auto", "tensorrt", "torch", "onnxruntime"]
BACKEND_NAMES: tuple[BackendName, ...] = ("auto", "tensorrt", "torch", "onnxruntime")

#: Whether live correction (``mirada serve``, ``mirada bench``) runs the mirror ensemble unless told otherwise. Off:
#: a stream on this project's 2-core CPU stays within its target with it (docs/MODEL.md, "Mirror ensemble"), but
#: the service's CPU capacity, one session at 25 fps or more, has no room for the extra network pass, and its
#: cost on a GPU is not measured yet. ``mirada correct`` (files, offline) runs it by default.
MIRROR_DEFAULT = False


def load_model(checkpoint: str | Path | None = None) -> Redirector:
    """The redirector of a training checkpoint on the CPU, or the shipped one (:mod:`engine.weights`) if None.

    Raises :class:`FileNotFoundError` naming the file if it is missing.
    """
    if checkpoint is None:
        return load_default_model("cpu")
    from engine.train.checkpoint import load_redirector  # pulls in the training stack, only when needed

    model, _, _ = load_redirector(checkpoint, "cpu")
    return model


def onnx_matches(model: Redirector, onnx_path: Path, atol: float = 1e-3) -> bool:
    """True if ``onnx_path`` computes what ``model`` does (one small batch in ONNX Runtime; about 0.1 s).

    Guards the shipped ONNX file against having been exported from other weights than the shipped checkpoint.
    """
    from engine.model.export import OnnxMismatchError, verify_onnx  # onnxruntime is heavy: import on use

    try:
        verify_onnx(model, onnx_path, DEFAULT_STRIP, batch_sizes=(1,), atol=atol)
    except (OnnxMismatchError, RuntimeError, ValueError) as err:  # ONNX Runtime raises RuntimeError subclasses
        logger.warning("%s does not match the model (%s); exporting the model instead", onnx_path, err)
        return False
    return True


def default_onnx_for(model: Redirector) -> Path | None:
    """The shipped ONNX file if it exists and matches ``model`` (the shipped checkpoint), else None."""
    path = default_onnx()
    return path if path is not None and onnx_matches(model, path) else None


def select_backend(
    name: BackendName | str,
    model: Redirector,
    *,
    onnx_path: Path | None = None,
    cache_dir: Path | None = None,
    cpu_threads: int = 1,
    geometry: StripGeometry = DEFAULT_STRIP,
    mirror: bool = False,
) -> Backend:
    """Build the backend ``name`` for ``model``; with ``mirror``, for its :class:`MirrorEnsemble` (each strip
    redirected together with its mirror image and the two averaged: more accurate, twice the network's work; its
    name ends in ``+mirror``).

    ``auto`` picks TensorRT when it is importable and there is a GPU, else PyTorch on CUDA, else ONNX Runtime on
    the CPU; if building the TensorRT engine fails it logs why and falls back to PyTorch on CUDA. ``onnx_path``
    skips the ONNX export (ONNX Runtime and TensorRT); exports and engines are cached in ``cache_dir``.
    ``cpu_threads`` is the intra-op thread count of the CPU backends. Without ``onnx_path`` the shipped
    ``engine/weights/redirector.onnx`` is used when it computes what ``model`` does.
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if not mirror:
        return _select(name, model, onnx_path, cache_dir, cpu_threads, geometry)
    if onnx_path is not None:
        raise ValueError(
            "an ONNX file runs as it was exported, so it cannot be made a mirror ensemble: leave out the file (the "
            "ensemble is exported from the model and cached) or the mirror ensemble"
        )
    backend = _select(name, MirrorEnsemble.from_redirector(model), None, cache_dir, cpu_threads, geometry)
    backend.name = f"{backend.name}+mirror"
    return backend


def _select(
    name: str,
    model: Redirector,
    onnx_path: Path | None,
    cache_dir: Path | None,
    cpu_threads: int,
    geometry: StripGeometry,
) -> Backend:
    cuda = torch.cuda.is_available()
    if name == "tensorrt" or (name == "auto" and tensorrt_available()):
        if not tensorrt_available():
            raise RuntimeError("the tensorrt backend needs the tensorrt package and a CUDA device")
        path = _onnx_for(model, onnx_path, cache_dir, geometry)
        try:
            return TensorRTBackend(path, cache_dir=cache_dir, geometry=geometry)
        except RuntimeError:
            if name == "tensorrt":
                raise
            logger.exception("TensorRT failed; falling back to PyTorch on CUDA")
    if name == "torch" or (name == "auto" and cuda):
        device = "cuda" if cuda else "cpu"
        return TorchBackend(model, device, num_threads=None if cuda else cpu_threads, geometry=geometry)
    path = _onnx_for(model, onnx_path, cache_dir, geometry)
    return OnnxRuntimeBackend(onnx_path=path, threads=cpu_threads, geometry=geometry)


def _onnx_for(model: Redirector, onnx_path: Path | None, cache_dir: Path | None, geometry: StripGeometry) -> Path:
    """``onnx_path``, else the shipped export if it is this model's, else a cached export of ``model``."""
    if onnx_path is not None:
        return onnx_path
    # The shipped export saves exporting the shipped weights again (about 15 s on a CPU); it is the plain network's.
    plain = geometry == DEFAULT_STRIP and not isinstance(model, MirrorEnsemble)
    shipped = default_onnx_for(model) if plain else None
    return shipped if shipped is not None else cached_onnx(model, cache_dir, geometry)
