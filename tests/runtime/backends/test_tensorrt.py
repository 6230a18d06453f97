"""The TensorRT backend without TensorRT: cache keys, the batch profile, the build's logging, the import guard.

TensorRT cannot be installed on the CPU machines this project is built on. Everything that does not need a GPU
is tested here against a small stand-in of the ``tensorrt`` module's API; the real engine is tested only where
TensorRT and a CUDA device exist (``test_real_tensorrt_matches_onnx_runtime``, skipped elsewhere with the reason).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from engine.model.export import INPUT_NAMES, OUTPUT_NAMES
from engine.runtime.backends import tensorrt_backend as trt_backend
from engine.runtime.backends.select import select_backend
from engine.runtime.backends.tensorrt_backend import (
    build_engine,
    check_engine_io,
    engine_cache_key,
    profile_shapes,
    tensorrt_available,
    write_atomically,
)

STRIP_SHAPES = [("strip", (-1, 3, 64, 256)), ("target_gaze", (-1, 2)), ("strength", (-1,))]


def test_cache_key_changes_with_every_component() -> None:
    base = (b"onnx", "10.3.0", "NVIDIA H100 80GB HBM3", 32, True)
    key = engine_cache_key(*base)
    assert key == engine_cache_key(*base), "the key must be deterministic"
    assert len(key) == 24
    variants = [
        (b"onnx2", *base[1:]),
        (base[0], "10.4.0", *base[2:]),
        (*base[:2], "NVIDIA H200", *base[3:]),
        (*base[:3], 16, base[4]),
        (*base[:4], False),
    ]
    keys = {engine_cache_key(*v) for v in variants}
    assert key not in keys
    assert len(keys) == len(variants)


def test_profile_covers_batches_one_to_max_for_every_input() -> None:
    shapes = profile_shapes(STRIP_SHAPES, max_batch=32)
    assert shapes["strip"] == ((1, 3, 64, 256), (4, 3, 64, 256), (32, 3, 64, 256))
    assert shapes["target_gaze"] == ((1, 2), (4, 2), (32, 2))
    assert shapes["strength"] == ((1,), (4,), (32,))
    # The tuned size never exceeds the maximum.
    assert profile_shapes(STRIP_SHAPES, max_batch=2)["strength"] == ((1,), (2,), (2,))


def test_profile_refuses_other_dynamic_axes() -> None:
    with pytest.raises(ValueError, match="dynamic axis"):
        profile_shapes([("strip", (-1, 3, -1, 256))], max_batch=8)
    with pytest.raises(ValueError, match="positive"):
        profile_shapes(STRIP_SHAPES, max_batch=0)
    with pytest.raises(ValueError, match="no batch axis"):
        profile_shapes([("scalar", ())], max_batch=8)


class _FakeTensor:
    def __init__(self, name: str, shape: tuple[int, ...]) -> None:
        self.name = name
        self.shape = shape
        self.dtype = "FLOAT"


class _FakeTrt:
    """Just enough of TensorRT 10's builder API to run :func:`build_engine`."""

    class MemoryPoolType:
        WORKSPACE = "workspace"

    class BuilderFlag:
        FP16 = "fp16"

    class TensorIOMode:
        INPUT = "input"
        OUTPUT = "output"

    def __init__(self, parse_ok: bool = True, errors: tuple[str, ...] = (), build_ok: bool = True) -> None:
        self.parse_ok = parse_ok
        self.errors = errors
        self.build_ok = build_ok
        self.flags: list[str] = []
        self.profile: dict[str, tuple[Any, ...]] = {}
        fake = self

        class Network:
            num_inputs = len(STRIP_SHAPES)
            num_outputs = len(OUTPUT_NAMES)

            def get_input(self, i: int) -> _FakeTensor:
                return _FakeTensor(*STRIP_SHAPES[i])

            def get_output(self, i: int) -> _FakeTensor:
                return _FakeTensor(OUTPUT_NAMES[i], (-1, 2))

        class Profile:
            def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
                fake.profile[name] = (low, opt, high)

        class Config:
            def set_memory_pool_limit(self, pool: str, size: int) -> None:
                pass

            def set_flag(self, flag: str) -> None:
                fake.flags.append(flag)

            def add_optimization_profile(self, profile: Profile) -> None:
                pass

        class Builder:
            platform_has_fast_fp16 = True

            def __init__(self, logger: Any) -> None:
                pass

            def create_network(self, flags: int) -> Network:
                return Network()

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
                return b"engine-bytes" if fake.build_ok else None

        class OnnxParser:
            def __init__(self, network: Network, logger: Any) -> None:
                self.num_errors = len(fake.errors)

            def parse(self, data: bytes) -> bool:
                return fake.parse_ok

            def get_error(self, i: int) -> str:
                return fake.errors[i]

        self.Builder = Builder
        self.OnnxParser = OnnxParser


def test_build_sets_fp16_and_the_dynamic_profile(caplog: pytest.LogCaptureFixture) -> None:
    trt = _FakeTrt()
    with caplog.at_level(logging.INFO, logger=trt_backend.__name__):
        data = build_engine(trt, None, b"model", max_batch=32, fp16=True, source="model.onnx")
    assert data == b"engine-bytes"
    assert trt.flags == ["fp16"]
    assert trt.profile == profile_shapes(STRIP_SHAPES, 32)
    # Every input's profile and every output's shape is in the log.
    for name in (*INPUT_NAMES, *OUTPUT_NAMES):
        assert name in caplog.text
    assert build_engine(_FakeTrt(), None, b"model", max_batch=8, fp16=False, source="m") == b"engine-bytes"


def test_build_logs_every_parser_error(caplog: pytest.LogCaptureFixture) -> None:
    trt = _FakeTrt(parse_ok=False, errors=("unsupported op GridSample", "bad shape"))
    with caplog.at_level(logging.ERROR, logger=trt_backend.__name__), pytest.raises(RuntimeError, match="2 errors"):
        build_engine(trt, None, b"model", max_batch=32, fp16=True, source="model.onnx")
    assert "unsupported op GridSample" in caplog.text
    assert "bad shape" in caplog.text


def test_build_failure_raises() -> None:
    with pytest.raises(RuntimeError, match="failed to build"):
        build_engine(_FakeTrt(build_ok=False), None, b"m", max_batch=4, fp16=True, source="m")


def test_engine_io_is_checked_by_name(caplog: pytest.LogCaptureFixture) -> None:
    trt = _FakeTrt()

    def engine(inputs: tuple[str, ...], outputs: tuple[str, ...]) -> SimpleNamespace:
        names = [*inputs, *outputs]
        return SimpleNamespace(
            num_io_tensors=len(names),
            get_tensor_name=lambda i: names[i],
            get_tensor_mode=lambda n: trt.TensorIOMode.INPUT if n in inputs else trt.TensorIOMode.OUTPUT,
            get_tensor_dtype=lambda n: "FLOAT",
            get_tensor_shape=lambda n: (-1, 2),
        )

    # Order does not matter (bindings are found by name); a missing or foreign tensor does.
    with caplog.at_level(logging.INFO, logger=trt_backend.__name__):
        check_engine_io(trt, engine(tuple(reversed(INPUT_NAMES)), OUTPUT_NAMES))
    assert "engine input strip" in caplog.text
    with pytest.raises(RuntimeError, match="does not match"):
        check_engine_io(trt, engine(INPUT_NAMES, OUTPUT_NAMES[:-1]))


def test_engine_cache_file_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "redirector-abc.engine"
    write_atomically(path, b"123")
    assert path.read_bytes() == b"123"
    write_atomically(path, b"456")
    assert path.read_bytes() == b"456"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file may be left behind"


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed with a GPU here")
def test_without_tensorrt_the_guard_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tensorrt_available() is False
    model = torch.nn.Module()
    with pytest.raises(RuntimeError, match="tensorrt package"):
        select_backend("tensorrt", model)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA device"):
            trt_backend.TensorRTBackend("missing.onnx")
    monkeypatch.setattr(trt_backend.importlib, "import_module", _raise_import_error)
    with pytest.raises(RuntimeError, match="needs the tensorrt package"):
        trt_backend._import_tensorrt()


def _raise_import_error(name: str) -> None:
    raise ImportError(f"No module named {name!r}")


@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_available(), reason="needs the tensorrt package and a CUDA device (none here)")
def test_real_tensorrt_matches_onnx_runtime(tmp_path: Path) -> None:
    from engine.runtime.backends.onnx_backend import OnnxRuntimeBackend
    from engine.runtime.backends.select import load_model
    from engine.runtime.backends.tensorrt_backend import TensorRTBackend

    onnx = OnnxRuntimeBackend(load_model(None), cache_dir=tmp_path)
    engine = TensorRTBackend(onnx.onnx_path, cache_dir=tmp_path, max_batch=8)
    rng = np.random.default_rng(0)
    for batch in (1, 5, 11):  # 11 runs in two chunks of at most 8
        strips = rng.random((batch, 3, 64, 256), dtype=np.float32)
        gaze = (rng.random((batch, 2), dtype=np.float32) - 0.5) * 0.5
        strength = rng.random(batch, dtype=np.float32)
        ref, got = onnx.run(strips, gaze, strength), engine.run(strips, gaze, strength)
        # FP16 engine: a few hundredths of a pixel of flow, a few thousandths of intensity.
        assert np.abs(ref.flow - got.flow).max() < 0.1
        assert np.abs(ref.strip_out - got.strip_out).max() < 0.02
    engine.close()
