"""PyTorch and ONNX Runtime compute the same network, and the backend chooser picks what the machine can run.

Tolerance: every output within 1e-3 (absolute) between the torch CPU backend and ONNX Runtime on random strips:
intensities and the residual are in [0, 1] units, the flow in strip pixels, the estimates in radians, so 1e-3
is far below anything visible; float32 reordering of the same arithmetic stays around 1e-5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.model import Redirector, RedirectorConfig
from engine.model.export import OUTPUT_NAMES
from engine.runtime.backends.onnx_backend import OnnxRuntimeBackend
from engine.runtime.backends.select import load_model, onnx_matches, select_backend
from engine.runtime.backends.torch_backend import TorchBackend
from engine.weights import DEFAULT_ONNX

PARITY_ATOL = 1e-3


@pytest.fixture(scope="module")
def shipped() -> Redirector:
    return load_model(None)


@pytest.fixture(scope="module")
def onnx_backend(shipped: Redirector) -> OnnxRuntimeBackend:
    backend = select_backend("onnxruntime", shipped, cpu_threads=1)
    assert isinstance(backend, OnnxRuntimeBackend)
    return backend


def test_the_shipped_onnx_is_the_export_of_the_shipped_checkpoint(shipped: Redirector) -> None:
    assert DEFAULT_ONNX.is_file(), f"{DEFAULT_ONNX} is missing: run `mirada export` and commit it with the weights"
    assert onnx_matches(shipped, DEFAULT_ONNX, atol=PARITY_ATOL)


@pytest.mark.usefixtures("one_torch_thread")
def test_torch_and_onnx_runtime_agree_on_random_strips(shipped: Redirector, onnx_backend: OnnxRuntimeBackend) -> None:
    torch_backend = TorchBackend(shipped, "cpu")
    rng = np.random.default_rng(7)
    for batch in (1, 3, 9):
        strips = rng.random((batch, 3, 64, 256), dtype=np.float32)
        gaze = ((rng.random((batch, 2)) - 0.5) * np.radians(40.0)).astype(np.float32)
        strength = rng.random(batch).astype(np.float32)
        ref, got = torch_backend.run(strips, gaze, strength), onnx_backend.run(strips, gaze, strength)
        for name, a, b in zip(OUTPUT_NAMES, ref.arrays(), got.arrays(), strict=True):
            assert a.shape == b.shape, name
            assert np.abs(a - b).max() <= PARITY_ATOL, f"{name} at batch {batch}"
        # Not trivially equal: the network does move things.
        assert np.abs(ref.flow).max() > 0.1


def test_a_different_model_does_not_match_the_shipped_export(tmp_path: Path) -> None:
    torch.manual_seed(0)
    other = Redirector(RedirectorConfig()).eval()
    for p in other.decoder.flow_head.parameters():
        torch.nn.init.normal_(p, std=0.1)  # an untrained model has zero flow; make this one differ for sure
    assert not onnx_matches(other, DEFAULT_ONNX)


def test_auto_on_a_cpu_is_onnx_runtime(shipped: Redirector) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto picks a GPU backend")
    backend = select_backend("auto", shipped)
    assert backend.name == "onnxruntime"
    with pytest.raises(ValueError, match="unknown backend"):
        select_backend("fastest", shipped)


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_model(missing)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_batch_larger_than_max_batch_runs_in_chunks_in_order(shipped: Redirector) -> None:
    rng = np.random.default_rng(3)
    strips = rng.random((5, 3, 64, 256), dtype=np.float32)
    gaze = ((rng.random((5, 2)) - 0.5) * np.radians(40.0)).astype(np.float32)
    strength = rng.random(5).astype(np.float32)
    whole = TorchBackend(shipped, "cpu").run(strips, gaze, strength)
    chunked = TorchBackend(shipped, "cpu", max_batch=2).run(strips, gaze, strength)  # chunks of 2, 2 and 1
    assert chunked.batch == 5
    # other batch sizes pick other convolution orderings (about 1e-5 apart); a chunk out of place is far more
    for name, a, b in zip(OUTPUT_NAMES, whole.arrays(), chunked.arrays(), strict=True):
        assert np.abs(a - b).max() <= 1e-4, name
