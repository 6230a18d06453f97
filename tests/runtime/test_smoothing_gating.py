"""One-Euro filter, strength ramp, eye openness and the look-away helpers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.gating import NaturalLookAway, angle_between_deg, eye_aspect_ratio, linear_fade
from engine.runtime.smoothing import OneEuroFilter, Ramp


def test_one_euro_holds_a_constant_input_exactly() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.1)
    x = np.array([3.0, -2.0, 7.5])
    outs = [f(x, t / 30.0) for t in range(20)]
    assert all(np.array_equal(o, x) for o in outs)


def test_one_euro_reduces_jitter_and_follows_a_step() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    noisy = 10.0 + rng.normal(0.0, 1.0, 300)
    out = np.array([f(np.array([v]), t / 30.0)[0] for t, v in enumerate(noisy)])
    assert out[50:].std() < 0.5 * noisy[50:].std()
    g = OneEuroFilter(min_cutoff=1.0, beta=1.0)
    steps = [g(np.array([0.0 if t < 10 else 5.0]), t / 30.0)[0] for t in range(40)]
    assert steps[-1] == pytest.approx(5.0, abs=0.05)


def test_one_euro_ignores_repeated_timestamps() -> None:
    f = OneEuroFilter()
    f(np.array([1.0]), 0.0)
    first = f(np.array([2.0]), 0.1)
    assert np.array_equal(f(np.array([100.0]), 0.1), first)


def test_ramp_moves_one_step_per_frame_and_jumps_on_set() -> None:
    r = Ramp()
    values = [r.step(1.0, 4) for _ in range(6)]
    assert values == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    r.set(0.0)
    assert r.value == 0.0
    with pytest.raises(ValueError, match="frames"):
        r.step(1.0, 0)


def test_eye_aspect_ratio_of_open_and_closed_eyes() -> None:
    open_eye = np.array([[0, 0], [3, -2], [7, -2], [10, 0], [7, 2], [3, 2]], dtype=np.float64)
    closed = open_eye * np.array([1.0, 0.1])
    assert eye_aspect_ratio(open_eye) == pytest.approx(0.4)
    assert eye_aspect_ratio(closed) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="six"):
        eye_aspect_ratio(open_eye[:5])


def test_linear_fade_and_angles() -> None:
    assert linear_fade(10.0, 20.0, 30.0) == 1.0
    assert linear_fade(25.0, 20.0, 30.0) == pytest.approx(0.5)
    assert linear_fade(40.0, 20.0, 30.0) == 0.0
    assert angle_between_deg((0.0, 0.0), (0.0, 25.0)) == pytest.approx(25.0)
    assert angle_between_deg((10.0, 0.0), (-10.0, 0.0)) == pytest.approx(20.0)


def test_natural_look_away_is_seeded_small_and_spaced() -> None:
    a = NaturalLookAway(5.0, (100, 350), seed=3)
    b = NaturalLookAway(5.0, (100, 350), seed=3)
    offsets = [a.step() for _ in range(2000)]
    assert offsets == [b.step() for _ in range(2000)]
    norms = np.hypot(*np.array(offsets).T)
    assert norms.max() <= 5.0 + 1e-9
    assert norms.max() > 2.0  # glances do happen
    active = norms > 0
    starts = np.flatnonzero(active[1:] & ~active[:-1]) + 1
    assert len(starts) >= 4
    # Between the end of one glance and the start of the next there are 100-350 frames.
    ends = np.flatnonzero(active[:-1] & ~active[1:]) + 1
    gaps = [s - e for e, s in zip(ends, starts[1:], strict=False)]
    assert all(99 <= g <= 351 for g in gaps), gaps
