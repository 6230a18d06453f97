"""The redirector in ONNX Runtime on the CPU (the fallback when there is no GPU)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.model.export import INPUT_NAMES, OUTPUT_NAMES, check_model_geometry, export_onnx
from engine.model.redirector import Redirector
from engine.runtime.backends.base import (
    Backend,
    Float32Array,
    NetOutputs,
    default_cache_dir,
    model_fingerprint,
)
from engine.strip import DEFAULT_STRIP, StripGeometry

logger = logging.getLogger(__name__)


def cached_onnx(model: Redirector, cache_dir: Path | None = None, geometry: StripGeometry = DEFAULT_STRIP) -> Path:
    """The ONNX export of ``model``, written once into ``cache_dir`` under a name keyed by its weights.

    The export goes to a temporary file first and is renamed into place, so a process that is interrupted, or
    two that export at once, never leave a half-written file under the final name.
    """
    check_model_geometry(model, geometry)
    directory = default_cache_dir() if cache_dir is None else cache_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"redirector-{model_fingerprint(model)[:16]}-{geometry.height}x{geometry.width}.onnx"
    if path.is_file():
        logger.info("using the cached ONNX export %s", path)
        return path
    logger.info("exporting the redirector to %s (once per set of weights)", path)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=directory)
    os.close(fd)
    try:
        with quiet_exporter():
            export_onnx(model, tmp_name, geometry)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the ONNX exporter's per-pass INFO chatter (about a hundred lines) while keeping its warnings."""
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class OnnxRuntimeBackend(Backend):
    """Runs an exported redirector in ONNX Runtime.

    Give either ``onnx_path`` or a ``model`` (exported with :func:`cached_onnx` into ``cache_dir``).
    ``threads`` is the intra-op thread count: 1-2 keeps several streams on a small CPU from fighting over cores,
    and at batch 1 more threads barely help a network this small.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: Redirector | None = None,
        onnx_path: str | Path | None = None,
        *,
        cache_dir: Path | None = None,
        threads: int = 1,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        geometry: StripGeometry = DEFAULT_STRIP,
    ) -> None:
        super().__init__(geometry)
        if threads < 1:
            raise ValueError(f"threads must be positive, got {threads}")
        if onnx_path is None:
            if model is None:
                raise ValueError("OnnxRuntimeBackend needs a model or an onnx_path")
            onnx_path = cached_onnx(model, cache_dir, geometry)
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise FileNotFoundError(f"no ONNX file at {self.onnx_path}")
        import onnxruntime as ort  # heavy import, only for this backend

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ONNX Runtime's worker threads spin-wait for work after each run by default. Between two network calls
        # the corrector runs MediaPipe, and on a small CPU the spinning threads take its cores: measured on our
        # 2-core machine under load, 21 fps with spinning against 45-57 fps without.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(str(self.onnx_path), options, providers=list(providers))
        inputs = tuple(i.name for i in self._session.get_inputs())
        outputs = tuple(o.name for o in self._session.get_outputs())
        if inputs != INPUT_NAMES or outputs != OUTPUT_NAMES:
            raise ValueError(
                f"{self.onnx_path} is not a redirector export: inputs {inputs}, outputs {outputs} "
                f"(expected {INPUT_NAMES} and {OUTPUT_NAMES})"
            )
        strip_shape = self._session.get_inputs()[0].shape
        if list(strip_shape[1:]) != [3, geometry.height, geometry.width]:
            raise ValueError(
                f"{self.onnx_path} takes strips of shape {strip_shape}, the geometry needs 3 x "
                f"{geometry.height} x {geometry.width}"
            )
        logger.info("ONNX Runtime session on %s with %d thread(s): %s", providers, threads, self.onnx_path)

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        feeds = dict(zip(INPUT_NAMES, (strips, target_gaze, strength), strict=True))
        # InferenceSession.run is thread-safe, so streams can share one session without a lock.
        return NetOutputs.from_sequence(self._session.run(list(OUTPUT_NAMES), feeds))
