"""The shipped weights: one place for their paths, a clear error when they are missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import engine.weights as weights
from engine.model import Redirector
from engine.train.checkpoint import load_payload


def test_paths_live_next_to_the_package() -> None:
    assert weights.DEFAULT_CHECKPOINT.parent == Path(weights.__file__).resolve().parent
    assert weights.DEFAULT_CHECKPOINT.name == "redirector.pt"
    assert weights.DEFAULT_ONNX.name == "redirector.onnx"


def test_missing_weights_raise_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "DEFAULT_CHECKPOINT", tmp_path / "redirector.pt")
    monkeypatch.setattr(weights, "DEFAULT_ONNX", tmp_path / "redirector.onnx")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "redirector.pt"))):
        weights.load_default_model()
    assert weights.default_onnx() is None


def test_the_shipped_weights_load() -> None:
    assert weights.DEFAULT_CHECKPOINT.is_file(), f"{weights.DEFAULT_CHECKPOINT} is missing (the lead commits it)"
    model = weights.load_default_model()
    assert isinstance(model, Redirector)
    assert not model.training
    assert weights.default_onnx() == weights.DEFAULT_ONNX


def test_the_shipped_weights_are_calibrated() -> None:
    """The shipped redirector and both estimators carry the offsets that `mirada calibrate` measured."""
    payload = load_payload(weights.DEFAULT_CHECKPOINT)
    offset = payload["model"]["encoder.label_offset"]
    assert offset.abs().max() > 0
    torch.testing.assert_close(
        torch.rad2deg(offset).double(), torch.tensor(payload["label_calibration"]["offset_deg"]).double()
    )
    # and the gaze move gain that `mirada calibrate` measured against the critic (the head's is left at one)
    gain = payload["model"]["move_gain"]
    torch.testing.assert_close(gain, torch.tensor(payload["gain_calibration"]["gain"]))
    assert (gain[:2] > 1.0).all()
    assert torch.equal(gain[2:], torch.ones(2))
    assert Path(payload["gain_calibration"]["critic"]).name == weights.DEFAULT_ESTIMATOR_A.name
    for path in (weights.DEFAULT_ESTIMATOR_A, weights.DEFAULT_JUDGE):
        estimator = load_payload(path)
        assert estimator["model"]["output_offset"].abs().max() > 0, path
        assert estimator["label_calibration"]["strips"] > 0, path
