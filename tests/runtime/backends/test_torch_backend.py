"""The torch backend's set-up: what its precisions do to a copy of the model, its flat graph buffers, and the
CUDA path's own checks (the CUDA graph itself is timed and checked against float32 by ``bench/gpu_runtime.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.model import Redirector, RedirectorConfig
from engine.model.export import OUTPUT_NAMES
from engine.runtime.backends.torch_backend import TorchBackend, _output_shape, _prepared, _views
from engine.strip import DEFAULT_STRIP


@pytest.fixture(scope="module")
def model() -> Redirector:
    torch.manual_seed(0)
    return Redirector(RedirectorConfig()).eval()


def _dtypes(net: nn.Module, kinds: tuple[type[nn.Module], ...]) -> set[torch.dtype]:
    return {p.dtype for m in net.modules() if isinstance(m, kinds) for p in m.parameters(recurse=False)}


def test_amp_casts_only_convolution_and_linear_weights_of_a_copy(model: Redirector) -> None:
    net = _prepared(model, "amp", channels_last=False)
    assert net is not model
    assert _dtypes(net, (nn.Conv2d, nn.Linear)) == {torch.float16}
    others = {p.dtype for m in net.modules() if not isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters(False)}
    assert others <= {torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.float32}, "the caller's model must stay float32"
    # The same values, rounded once: what autocast would cast them to on every call.
    for (name, ours), theirs in zip(net.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(ours.float(), theirs.to(ours.dtype).float()), name


def test_fp16_casts_everything_and_fp32_is_the_model_itself(model: Redirector) -> None:
    assert {p.dtype for p in _prepared(model, "fp16", channels_last=False).parameters()} == {torch.float16}
    assert _prepared(model, "fp32", channels_last=False) is model


def test_flat_views_cover_the_buffer_in_order() -> None:
    shapes = [_output_shape(name, 2, DEFAULT_STRIP) for name in OUTPUT_NAMES]
    assert shapes[0] == (2, 3, 64, 256)
    assert shapes[3] == (2, 1, 64, 256)
    assert shapes[5] == (2, 2)
    flat = torch.arange(sum(int(np.prod(s)) for s in shapes), dtype=torch.float32)
    views = _views(flat, shapes)
    assert [v.shape for v in views] == shapes
    assert all(v.is_contiguous() for v in views)
    assert torch.equal(torch.cat([v.reshape(-1) for v in views]), flat)
    views[1].fill_(-1.0)  # views, not copies
    assert int((flat == -1.0).sum()) == 2 * 2 * 64 * 256
    with pytest.raises(ValueError, match="hold"):
        _views(flat, shapes[:-1])


def test_gpu_only_options_are_refused_on_a_cpu(model: Redirector) -> None:
    for kwargs in ({"precision": "amp"}, {"precision": "fp16"}, {"cuda_graphs": True}, {"channels_last": True}):
        with pytest.raises(ValueError, match="CUDA"):
            TorchBackend(model, "cpu", **kwargs)
    with pytest.raises(ValueError, match="precision"):
        TorchBackend(model, "cpu", precision="int8")  # type: ignore[arg-type]
    backend = TorchBackend(model, "cpu")
    assert backend.precision == "fp32"
    assert backend.name == "torch-cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
@pytest.mark.parametrize("precision", ["amp", "fp16"])
def test_cuda_graph_outputs_match_float32(model: Redirector, precision: str) -> None:
    rng = np.random.default_rng(0)
    strips = rng.random((3, 3, 64, 256), dtype=np.float32)
    gaze = rng.uniform(-0.3, 0.3, (3, 2)).astype(np.float32)
    strength = np.ones(3, np.float32)
    expected = TorchBackend(model, "cpu").run(strips, gaze, strength)
    backend = TorchBackend(model, "cuda", precision=precision)  # type: ignore[arg-type]
    for _ in range(2):  # the first call captures, the second replays
        got = backend.run(strips, gaze, strength)
        assert np.abs(got.flow - expected.flow).max() < 0.05
        assert np.abs(got.gaze_estimate - expected.gaze_estimate).max() < np.radians(0.2)
