"""The backend interface: input checks, empty batches, and splitting and joining outputs across streams."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.backends.base import NetOutputs, empty_outputs
from engine.strip import DEFAULT_STRIP
from tests.runtime.fakes import FakeBackend


def _outputs(batch: int, seed: int) -> NetOutputs:
    rng = np.random.default_rng(seed)
    h, w = DEFAULT_STRIP.height, DEFAULT_STRIP.width
    shapes = [(batch, 3, h, w), (batch, 2, h, w), (batch, 3, h, w), (batch, 1, h, w), (batch, 2), (batch, 2)]
    return NetOutputs.from_sequence([rng.random(s, dtype=np.float32) for s in shapes])


def test_split_and_concat_are_inverses() -> None:
    whole = _outputs(5, 0)
    parts = whole.split([2, 0, 3])
    assert [p.batch for p in parts] == [2, 0, 3]
    assert np.array_equal(parts[2].flow, whole.flow[2:5])
    assert np.array_equal(parts[0].gaze_estimate, whole.gaze_estimate[:2])
    joined = NetOutputs.concat(parts)
    for a, b in zip(joined.arrays(), whole.arrays(), strict=True):
        assert np.array_equal(a, b)


def test_split_refuses_sizes_that_do_not_add_up() -> None:
    whole = _outputs(3, 1)
    with pytest.raises(ValueError, match="add up to 4"):
        whole.split([2, 2])
    with pytest.raises(ValueError, match="negative"):
        whole.split([4, -1])
    with pytest.raises(ValueError, match="at least one"):
        NetOutputs.concat([])
    with pytest.raises(TypeError, match="sliced"):
        whole[0]  # type: ignore[index]


def test_from_sequence_needs_all_six_outputs() -> None:
    with pytest.raises(ValueError, match="expected 6 outputs"):
        NetOutputs.from_sequence([np.zeros((1, 2), np.float32)])


def test_run_checks_shapes_and_skips_empty_batches() -> None:
    backend = FakeBackend()
    h, w = DEFAULT_STRIP.height, DEFAULT_STRIP.width
    out = backend.run(np.zeros((0, 3, h, w), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.float32))
    assert out.batch == 0
    assert out.flow.shape == empty_outputs(DEFAULT_STRIP).flow.shape
    assert backend.batches == []
    with pytest.raises(ValueError, match="strips must be"):
        backend.run(np.zeros((1, 3, h, w + 1)), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="target_gaze"):
        backend.run(np.zeros((2, 3, h, w)), np.zeros((1, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="strength"):
        backend.run(np.zeros((2, 3, h, w)), np.zeros((2, 2)), np.zeros(3))
    # float64 inputs are accepted and converted.
    assert backend.run(np.zeros((2, 3, h, w)), np.zeros((2, 2)), np.ones(2)).batch == 2
