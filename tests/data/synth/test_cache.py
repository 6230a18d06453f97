"""Pair caches hold exactly what the sampler rendered, and serve reproducible batches."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
import torch

from engine.data.synth import SynthSampler
from engine.data.synth.cache import CachedPairs, write_cache
from tests.data.synth.test_sampler import SMALL


def test_cache_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "pairs.h5"
    sampler = SynthSampler(SMALL, seed=5, batch_size=3)
    write_cache(sampler, path, pairs=5, progress=False)
    rendered = [SynthSampler(SMALL, seed=5, batch_size=3).pairs(i, n) for i, n in ((0, 3), (1, 2))]
    with h5py.File(path) as f:
        assert f["source/image"].shape == (5, 32, 128, 3)
        stored = torch.from_numpy(f["target/image"][()]).permute(0, 3, 1, 2).float() / 255
        gaze = torch.from_numpy(f["source/gaze"][()])
        pupil = torch.from_numpy(f["target/pupil"][()])
    expected = torch.cat([p.target.image for p in rendered])
    assert (stored - expected).abs().max() <= 0.5 / 255 + 1e-6
    torch.testing.assert_close(gaze, torch.cat([p.source.gaze for p in rendered]))
    torch.testing.assert_close(pupil, torch.cat([p.target.pupil for p in rendered if p.target.pupil is not None]))
    assert pupil.shape == (5, 2, 2)

    cached = CachedPairs(path, batch_size=4, seed=1)
    assert len(cached) == 5
    a, b = cached.pairs(0), CachedPairs(path, batch_size=4, seed=1).pairs(0)
    assert torch.equal(a.source.image, b.source.image)
    assert a.source.image.shape == (4, 3, 32, 128)
    torch.testing.assert_close(a.source.subject, a.target.subject)
    assert a.target.pupil is not None
    assert a.target.pupil.shape == (4, 2, 2)


def test_a_cache_without_pupil_positions_serves_batches_without_them(tmp_path: Path) -> None:
    path = tmp_path / "pairs.h5"
    write_cache(SynthSampler(SMALL, seed=5, batch_size=3), path, pairs=3, progress=False)
    with h5py.File(path, "a") as f:  # as written before session 16
        del f["source/pupil"], f["target/pupil"]
    batch = CachedPairs(path, batch_size=2).pairs(0)
    assert batch.source.pupil is None
    assert batch.target.pupil is None


def test_missing_or_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no pair cache"):
        CachedPairs(tmp_path / "nope.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(KeyError, match="not a pair cache"):
        CachedPairs(other)
