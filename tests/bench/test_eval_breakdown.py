"""The per-condition error table of ``bench/eval_breakdown.py`` on hand-made per-pair rows."""

from __future__ import annotations

import pytest
import torch

from bench.eval_breakdown import breakdown, markdown


def _rows() -> dict[str, torch.Tensor]:
    n = 4
    return {
        "gaze_unredirected_deg": torch.tensor([30.0, 10.0, 10.0, 10.0]),
        "gaze_redirection_deg": torch.tensor([1.0, 2.0, 3.0, 10.0]),
        "head_redirection_deg": torch.tensor([1.0, 1.0, 1.0, 1.0]),
        "judge_gaze_floor_deg": torch.tensor([0.5, 0.5, 0.5, 20.0]),
        "judge_head_floor_deg": torch.zeros(n),
        "closed": torch.tensor([0.0, 0.0, 0.0, 1.0]),
        "openness": torch.tensor([1.0, 0.3, 1.0, 0.0]),
        "glasses": torch.tensor([1.0, 0.0, 0.0, 0.0]),
        "scale": torch.tensor([0.5, 0.5, 1.0, 1.0]),
        "gaze_off_axis_deg": torch.tensor([5.0, 25.0, 5.0, 5.0]),
        "head_off_axis_deg": torch.tensor([20.0, 5.0, 5.0, 5.0]),
        "gaze_change_deg": torch.tensor([30.0, 10.0, 10.0, 10.0]),
    }


def test_each_condition_averages_its_own_pairs() -> None:
    table = breakdown(_rows(), (0.5, 0.75, 1.0))
    assert table["all pairs"]["pairs"] == 4
    assert table["all pairs"]["gaze_redirection_deg"] == pytest.approx(4.0)
    assert table["eyes closed"]["judge_gaze_floor_deg"] == pytest.approx(20.0)
    assert table["eyes partly closed (openness < 0.5)"]["gaze_redirection_deg"] == pytest.approx(2.0)
    assert table["eyes open (openness >= 0.5)"]["gaze_redirection_deg"] == pytest.approx(2.0)
    assert table["glasses"]["pairs"] == 1
    assert table["sensor scale 0.5"]["gaze_redirection_deg"] == pytest.approx(1.5)
    assert "sensor scale 0.75" not in table  # no pair drawn at that scale: no row
    assert table["gaze moved more than 20°"]["gaze_redirection_deg"] == pytest.approx(1.0)
    assert table["head beyond 15° (pitch or yaw)"]["pairs"] == 1
    text = markdown(table)
    assert text.count("\n") == len(table) + 2
    assert "| eyes closed | 1 | 10.00 | 10.00 | 1.00 | 20.00 |" in text
