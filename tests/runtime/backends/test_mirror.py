"""The mirror ensemble in the runtime's backends: what it computes, that it is mirror-symmetric, and that its ONNX
export agrees with torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from engine.model import Decoded, Redirector
from engine.model.export import export_onnx, verify_onnx
from engine.model.mirror import MirrorEnsemble, merge_mirrored_batch, mirror_angles, mirror_flow, mirror_strips
from engine.runtime.backends import OnnxRuntimeBackend, TorchBackend, model_fingerprint, select_backend
from engine.strip import DEFAULT_STRIP
from tests.model.helpers import random_heads_redirector


@pytest.fixture(scope="module")
def model() -> Redirector:
    return random_heads_redirector()


def _inputs(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    strips = rng.random((batch, 3, 64, 256), dtype=np.float32)
    gaze = ((rng.random((batch, 2)) - 0.5) * 0.6).astype(np.float32)
    strength = rng.random(batch).astype(np.float32)
    return strips, gaze, strength


def test_the_ensemble_is_the_merge_of_the_network_on_the_strips_and_their_mirrors(model: Redirector) -> None:
    ensemble = MirrorEnsemble.from_redirector(model)
    assert not ensemble.training
    strips, gaze, strength = (torch.from_numpy(a) for a in _inputs(3, 0))
    with torch.no_grad():
        out = ensemble(strips, gaze, strength)
        plain = model(strips, gaze, strength)
        mirrored = model(mirror_strips(strips), mirror_angles(gaze), strength)
    both = Decoded(*(torch.cat((a, b)) for a, b in zip(plain[:4], mirrored[:4], strict=True)))
    expected = merge_mirrored_batch(strips, both)
    # The ensemble runs one batch of 6, the reference two of 3: convolutions at other batch sizes round differently
    # (up to about 5e-5 here), hence the tolerance.
    for name, got, want in zip(Decoded._fields, out[:4], expected, strict=True):
        assert torch.allclose(got, want, atol=2e-4), name
    mean_gaze = 0.5 * (plain.gaze_estimate + mirror_angles(mirrored.gaze_estimate))
    mean_head = 0.5 * (plain.head_estimate + mirror_angles(mirrored.head_estimate))
    assert torch.allclose(out.gaze_estimate, mean_gaze, atol=1e-5)
    assert torch.allclose(out.head_estimate, mean_head, atol=1e-5)
    assert (out.flow - plain.flow).abs().max() > 1e-2, "the ensemble should differ from a single pass"
    # the same weights, another graph: exported and compiled caches must not mix them up
    assert model_fingerprint(ensemble) != model_fingerprint(model)
    with pytest.raises(ValueError, match="strength"):
        ensemble(strips, gaze, strength[:2])


def test_the_ensemble_of_a_mirrored_strip_is_the_mirrored_ensemble(model: Redirector) -> None:
    # The point of the ensemble: a strip and its mirror get the same correction, mirrored. A sign error in the
    # way a flow or an angle is mirrored back breaks this.
    net = select_backend("torch", model, cpu_threads=1, mirror=True)
    assert net.name == "torch-cpu+mirror"
    strips, gaze, strength = _inputs(2, 1)
    out = net.run(strips, gaze, strength)
    t = torch.from_numpy
    flipped = net.run(mirror_strips(t(strips)).numpy(), mirror_angles(t(gaze)).numpy(), strength)
    assert np.abs(out.flow).max() > 0.5, "a vacuous test: the network does not move anything"
    assert np.allclose(mirror_flow(t(flipped.flow)).numpy(), out.flow, atol=1e-4)
    assert np.allclose(mirror_strips(t(flipped.strip_out)).numpy(), out.strip_out, atol=1e-4)
    assert np.allclose(mirror_strips(t(flipped.mask * flipped.residual)).numpy(), out.mask * out.residual, atol=1e-5)
    assert np.allclose(mirror_angles(t(flipped.gaze_estimate)).numpy(), out.gaze_estimate, atol=1e-5)
    assert np.allclose(mirror_angles(t(flipped.head_estimate)).numpy(), out.head_estimate, atol=1e-5)
    # ... which the network alone is not
    plain = TorchBackend(model, "cpu", num_threads=1)
    a = plain.run(strips, gaze, strength)
    b = plain.run(mirror_strips(t(strips)).numpy(), mirror_angles(t(gaze)).numpy(), strength)
    assert np.abs(mirror_flow(t(b.flow)).numpy() - a.flow).max() > 1e-2


def test_the_ensemble_exports_to_onnx_and_runs_in_onnx_runtime(model: Redirector, tmp_path: Path) -> None:
    ensemble = MirrorEnsemble.from_redirector(model)
    path = export_onnx(ensemble, tmp_path / "mirror.onnx", DEFAULT_STRIP)
    # the same stated tolerance as the plain network's parity test
    assert verify_onnx(ensemble, path, DEFAULT_STRIP, batch_sizes=(1, 3), atol=1e-4) < 1e-4
    net = select_backend("onnxruntime", model, cache_dir=tmp_path / "cache", cpu_threads=1, mirror=True)
    assert isinstance(net, OnnxRuntimeBackend)
    assert net.name == "onnxruntime+mirror"
    strips, gaze, strength = _inputs(2, 2)
    got = net.run(strips, gaze, strength)
    with torch.no_grad():
        want = ensemble(*(torch.from_numpy(a) for a in (strips, gaze, strength)))
    assert np.abs(got.flow - want.flow.numpy()).max() < 1e-4
    assert np.abs(got.gaze_estimate - want.gaze_estimate.numpy()).max() < 1e-4


def test_select_backend_builds_the_ensemble_only_when_asked(model: Redirector, tmp_path: Path) -> None:
    net = select_backend("torch", model, mirror=True)
    assert isinstance(net, TorchBackend)
    assert isinstance(net.model, MirrorEnsemble)
    plain = select_backend("torch", model)
    assert not isinstance(plain.model, MirrorEnsemble)  # type: ignore[attr-defined]
    assert plain.name == "torch-cpu"
    with pytest.raises(ValueError, match="as it was exported"):
        select_backend("onnxruntime", model, onnx_path=tmp_path / "x.onnx", mirror=True)


class _Ops(TorchDispatchMode):
    """Records the name of every aten operation run inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.names.add(str(func))
        return func(*args, **(kwargs or {}))


def test_the_ensemble_builds_no_tensor_from_host_data(model: Redirector) -> None:
    # The torch backend captures the network in a CUDA graph, and a capture refuses host-to-device copies: a tensor
    # made from Python numbers inside forward (torch.tensor, new_tensor: aten.lift_fresh) would make every capture
    # fail and the backend fall back to eager. No GPU here, so the operations are checked instead.
    strips, gaze, strength = (torch.from_numpy(a) for a in _inputs(2, 3))
    for net in (model, MirrorEnsemble.from_redirector(model)):
        with torch.no_grad(), _Ops() as ops:
            net(strips, gaze, strength)
        assert not {name for name in ops.names if "lift_fresh" in name or "_to_copy" in name}, type(net).__name__
    with _Ops() as ops:
        gaze.new_tensor((1.0, -1.0))
    assert "aten.lift_fresh.default" in ops.names  # what the check looks for does show
