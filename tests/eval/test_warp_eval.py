"""Scoring the warp alone: the pipeline reads a warp that does nothing as no move at all."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from engine.data.synth import Split
from engine.eval.warp_eval import (
    MAX_MISS_PX,
    WarpEvalConfig,
    evaluate_warp,
    folds_near,
    summarise_warp,
    warp_table,
)
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
    assert result["folded_percent"] == 0.0  # the identity folds nowhere
    assert result["open_pairs_folded_at_a_pupil"] == 0
    assert "folds on 0.00 % of the strip" in warp_table(result)
    assert result["pupil_move_slope"] == pytest.approx(0.0, abs=1e-6)
    # the identity leaves the source: by the iris reading none of the gaze move is made (the source's pupils read
    # in the target's scene, up to the fixation distance), and the full output is the same image as the warp
    fraction = result["gaze_move_fraction"]
    assert fraction["iris"] == pytest.approx(0.0, abs=0.05)
    assert fraction["judge_full"] == pytest.approx(fraction["judge_warp"], abs=1e-6)
    assert f"the warp lands {fraction['iris']:.3f} of it by the iris reading" in warp_table(result)
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


def test_the_judge_also_reads_the_pairs_whose_pupil_was_not_solved() -> None:
    def column(*values: float) -> Tensor:
        return torch.tensor(values, dtype=torch.float64).view(-1, 1)

    readings = {
        "open": column(1, 1, 1, 0),
        "glasses": column(0, 0, 1, 0),
        "moved_deg": column(10, 30, 40, 20),
        "true_move": torch.ones(4, 4, dtype=torch.float64),
        "iris_move": torch.ones(4, 4, dtype=torch.float64),
        "miss": column(0.0, 0.0, MAX_MISS_PX + 1.0, 0.0),  # the third pair folds
        "iris": column(1, 2, 9, 5),
        "judge_full": column(1, 1, 7, 5),
        "judge_warp": column(2, 4, 12, 5),
        "judge_floor": column(1, 1, 1, 1),
        "psnr_full": column(30, 30, 30, 30),
        "psnr_warp": column(29, 29, 29, 29),
    }
    result = summarise_warp(readings)
    assert "gaze_move_fraction" not in result  # readings from before session 18
    assert result["unsolved_pairs"] == 1
    assert result["gaze_error_deg"]["open"]["pairs"] == 2
    assert result["gaze_error_deg"]["open"]["judge_warp"] == pytest.approx(3.0)
    every = result["judge_every_open_pair"]
    assert every["pairs"] == 3
    assert every["judge_warp"] == pytest.approx(6.0)
    assert every["moved_deg"] == pytest.approx(80 / 3)
    assert "| open, unsolved pairs too | 3 | 26.67 | - | 6.00 | 3.00 | 1.00 |" in warp_table(result)


def test_a_fold_counts_at_a_pupil_only_when_it_touches_it() -> None:
    det = torch.ones(3, 15, 47)
    det[0, 7, 20] = -0.5  # the square centred at (21, 8)
    det[1, 7, 20] = 0.0  # a determinant of 0 folds too
    det[2, 7, 20] = 0.01  # a squeeze, not a fold
    at = torch.tensor([[24.5, 8.0], [40.0, 8.0]]).expand(3, 2, 2)
    assert folds_near(det, at).tolist() == [True, True, False]
    away = torch.tensor([[26.0, 8.0], [40.0, 8.0]]).expand(3, 2, 2)  # 5 px off in x
    assert folds_near(det, away).tolist() == [False, False, False]
    assert folds_near(det, away, radius=5.0).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="points"):
        folds_near(det, torch.zeros(3, 2))


def test_the_gaze_move_fraction_is_the_slope_along_the_true_move() -> None:
    def column(*values: float) -> Tensor:
        return torch.tensor(values, dtype=torch.float64).view(-1, 1)

    move = torch.tensor([[0.2, 0.0], [0.0, -0.4], [0.1, 0.1], [0.3, 0.3]], dtype=torch.float64)
    readings = {
        "open": column(1, 1, 1, 0),  # the fourth pair is closed: left out
        "glasses": column(0, 0, 0, 0),
        "moved_deg": column(10, 20, 8, 24),
        "true_move": torch.ones(4, 4, dtype=torch.float64),
        "iris_move": torch.ones(4, 4, dtype=torch.float64),
        "miss": column(0.0, 0.0, 0.0, 0.0),
        "psnr_full": column(30, 30, 30, 30),
        "psnr_warp": column(29, 29, 29, 29),
        "gaze_move": move,
        "gaze_iris": 0.9 * move,
        "gaze_judge_warp": 0.8 * move + torch.tensor([[0.0, 0.05]], dtype=torch.float64),  # plus an offset
        "gaze_judge_full": move,
        "gaze_judge_floor": 0.95 * move,
    }
    for name in ("iris", "judge_full", "judge_warp", "judge_floor"):
        readings[name] = column(1, 1, 1, 1)
    fraction = summarise_warp(readings)["gaze_move_fraction"]
    assert fraction["iris"] == pytest.approx(0.9)
    assert fraction["judge_full"] == pytest.approx(1.0)
    assert fraction["judge_floor"] == pytest.approx(0.95)
    # the offset projects onto the yaw moves of the open pairs: (-0.4 + 0.1) * 0.05 / (0.04 + 0.16 + 0.02)
    assert fraction["judge_warp"] == pytest.approx(0.8 + (-0.3 * 0.05) / 0.22)
