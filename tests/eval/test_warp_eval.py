"""Scoring the warp alone: the pipeline reads a warp that does nothing as no move at all."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from engine.data.synth import Split
from engine.eval.warp_eval import WarpEvalConfig, evaluate_warp
from engine.model import Redirector, RedirectorOutput
from tests.train.helpers import TINY_MODEL, TINY_SYNTH, tiny_estimator


class _StillWarp(Redirector):
    """A redirector whose warp is the identity and whose full output is the source itself."""

    def forward(self, strip: Tensor, target_gaze: Tensor, strength: Tensor) -> RedirectorOutput:
        n, _, h, w = strip.shape
        zeros = torch.zeros(n, 2, device=strip.device)
        return RedirectorOutput(
            strip, torch.zeros(n, 2, h, w), torch.zeros_like(strip), torch.zeros(n, 1, h, w), zeros, zeros
        )


def test_a_warp_that_moves_nothing_reads_as_the_whole_move_left() -> None:
    config = WarpEvalConfig(pairs=16, batch_size=8, split=Split.VAL, seed=2)
    result = evaluate_warp(_StillWarp(TINY_MODEL), tiny_estimator("b"), TINY_SYNTH, config, progress=False)
    assert result["pairs"] == 16
    assert result["unsolved_pairs"] == 0
    assert result["pupil_move_slope"] == pytest.approx(0.0, abs=1e-6)
    opened = result["gaze_error_deg"]["open"]
    assert opened["pairs"] > 8
    # the source's pupils read from the target's scene: the source's gaze, up to the fixation distance
    assert opened["iris"] == pytest.approx(opened["moved_deg"], abs=0.5)
    assert result["psnr_full_db"] == pytest.approx(result["psnr_warp_db"], abs=1e-6)  # no residual, same image
    assert opened["judge_full"] == pytest.approx(opened["judge_warp"], abs=1e-4)
    assert result["config"]["split"] == "VAL"


def test_too_few_pairs_are_refused() -> None:
    with pytest.raises(ValueError, match="pairs"):
        WarpEvalConfig(pairs=4, batch_size=8)
