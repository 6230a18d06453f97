"""The mirror-ensembling backend: what it asks of the backend it wraps, and that its result is mirror-symmetric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.model import Redirector, RedirectorConfig
from engine.model.mirror import mirror_angles, mirror_flow, mirror_strips
from engine.runtime.backends import select_backend
from engine.runtime.backends.mirror import MirroredBackend
from engine.runtime.backends.torch_backend import TorchBackend
from tests.runtime.fakes import FakeBackend


@pytest.fixture(scope="module")
def model() -> Redirector:
    """A redirector with random output heads, so that its flows and residuals are far from zero and asymmetric."""
    torch.manual_seed(0)
    net = Redirector(RedirectorConfig())
    with torch.no_grad():
        for head in (net.decoder.flow_head, net.decoder.full_head):
            for param in head.parameters():
                param.normal_(0.0, 0.3)
    return net.eval()


def _inputs(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    strips = rng.random((batch, 3, 64, 256), dtype=np.float32)
    gaze = ((rng.random((batch, 2)) - 0.5) * 0.6).astype(np.float32)
    strength = rng.random(batch).astype(np.float32)
    return strips, gaze, strength


def test_the_wrapped_backend_sees_each_strip_and_its_mirror_in_one_call() -> None:
    inner = FakeBackend(flow_xy=(1.5, -0.5), gaze_deg=(3.0, 4.0))
    net = MirroredBackend(inner)
    assert net.name == "fake+mirror"
    strips, gaze, strength = _inputs(3, 0)
    out = net.run(strips, gaze, strength)
    assert inner.batches == [6]
    assert inner.strengths[0] == pytest.approx([*strength.tolist(), *strength.tolist()])
    assert out.batch == 3
    # A constant field (1.5, -0.5) and its mirror (-1.5, -0.5) average to (0, -0.5); the fake's constant gaze
    # estimate (3, 4) degrees and its mirror (3, -4) to (3, 0).
    assert np.allclose(out.flow[:, 0], 0.0, atol=1e-6)
    assert np.allclose(out.flow[:, 1], -0.5, atol=1e-6)
    assert np.allclose(np.degrees(out.gaze_estimate), [3.0, 0.0], atol=1e-5)
    assert net.run(strips[:0], gaze[:0], strength[:0]).batch == 0
    assert inner.batches == [6], "an empty batch must not reach the network"
    with pytest.raises(ValueError, match="already"):
        MirroredBackend(net)


def test_the_ensemble_of_a_mirrored_strip_is_the_mirrored_ensemble(model: Redirector) -> None:
    # The point of the ensemble: a strip and its mirror get the same correction, mirrored. A sign error in the
    # way a flow or an angle is mirrored back breaks this.
    net = MirroredBackend(TorchBackend(model, "cpu", num_threads=1))
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
    a, b = (
        plain.run(strips, gaze, strength),
        plain.run(mirror_strips(t(strips)).numpy(), mirror_angles(t(gaze)).numpy(), strength),
    )
    assert np.abs(mirror_flow(t(b.flow)).numpy() - a.flow).max() > 1e-2


def test_select_backend_wraps_when_asked(model: Redirector) -> None:
    net = select_backend("torch", model, mirror=True)
    assert isinstance(net, MirroredBackend)
    assert isinstance(net.inner, TorchBackend)
    assert not isinstance(select_backend("torch", model), MirroredBackend)
