"""ONNX export with a dynamic batch axis, checked in ONNX Runtime against PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.model import Redirector, RedirectorConfig
from engine.model.export import export_onnx, verify_onnx
from engine.strip import DEFAULT_STRIP, StripGeometry


@pytest.mark.slow
def test_onnx_matches_torch_for_batch_1_and_3(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Redirector(RedirectorConfig())
    with torch.no_grad():
        # Non-zero output heads, so flow, residual and mask are all exercised.
        for head in (model.decoder.flow_head, model.decoder.full_head):
            head.weight.normal_(0.0, 0.05)
        # A calibrated label offset (engine.train.calibrate) must reach the exported labels too.
        model.encoder.get_buffer("label_offset").copy_(torch.tensor([0.02, -0.01, 0.005, -0.004]))
        # ... and so must a calibrated move gain
        model.get_buffer("move_gain").copy_(torch.tensor([1.05, 1.04, 0.98, 1.03]))
    path = export_onnx(model, tmp_path / "redirector.onnx", DEFAULT_STRIP)
    assert path.stat().st_size < 25 * 1024 * 1024
    worst = verify_onnx(model, path, DEFAULT_STRIP, batch_sizes=(1, 3), atol=1e-4)
    assert worst < 1e-4


def test_export_rejects_a_geometry_the_model_was_not_built_for(tmp_path: Path) -> None:
    model = Redirector(RedirectorConfig())
    with pytest.raises(ValueError, match="geometry"):
        export_onnx(model, tmp_path / "x.onnx", StripGeometry(height=32, width=128))
