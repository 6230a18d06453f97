"""Gaze hardness-aware transformation: interpolation, consistency and the alpha update."""

from __future__ import annotations

import pytest
import torch

from engine.model.ght import ght_consistency, ght_interpolate, next_alpha
from engine.model.rotation import redirect_embedding


def _inputs(batch: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    z_s = torch.randn(batch, 3, 16, generator=gen)
    z_t = torch.randn(batch, 3, 16, generator=gen)
    g_s = (torch.rand(batch, 2, generator=gen) - 0.5) * 1.2
    g_t = (torch.rand(batch, 2, generator=gen) - 0.5) * 1.2
    return z_s, z_t, g_s, g_t


def test_alpha_one_gives_the_source_and_zero_consistency() -> None:
    z_s, z_t, g_s, g_t = _inputs()
    z_tr, g_tr = ght_interpolate(z_s, z_t, g_s, g_t, 1.0)
    assert torch.equal(z_tr, z_s)
    assert torch.equal(g_tr, g_s)
    consistency = ght_consistency(z_s, g_s, z_tr, g_tr, g_t)
    assert consistency.shape == (6,)
    assert consistency.abs().max() < 1e-5


def test_alpha_zero_gives_the_target() -> None:
    z_s, z_t, g_s, g_t = _inputs()
    z_tr, g_tr = ght_interpolate(z_s, z_t, g_s, g_t, torch.zeros(6))
    assert torch.equal(z_tr, z_t)
    assert torch.equal(g_tr, g_t)


def test_consistency_is_zero_for_a_perfectly_rotated_target() -> None:
    z_s, _, g_s, g_t = _inputs()
    z_t = redirect_embedding(z_s, g_s, g_t)
    z_tr, g_tr = ght_interpolate(z_s, z_t, g_s, g_t, 0.0)
    assert ght_consistency(z_s, g_s, z_tr, g_tr, g_t).abs().max() < 1e-5


def test_consistency_is_positive_for_unrelated_embeddings() -> None:
    z_s, z_t, g_s, g_t = _inputs()
    z_tr, g_tr = ght_interpolate(z_s, z_t, g_s, g_t, 0.0)
    assert ght_consistency(z_s, g_s, z_tr, g_tr, g_t).mean() > 0.5


def test_per_sample_alpha_mixes_per_sample() -> None:
    z_s, z_t, g_s, g_t = _inputs()
    alpha = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 0.25])
    z_tr, g_tr = ght_interpolate(z_s, z_t, g_s, g_t, alpha)
    torch.testing.assert_close(z_tr[2], 0.5 * (z_s[2] + z_t[2]))
    torch.testing.assert_close(g_tr[5], 0.25 * g_s[5] + 0.75 * g_t[5])
    assert torch.equal(z_tr[0], z_s[0])
    assert torch.equal(z_tr[1], z_t[1])


def test_next_alpha_clamps_and_detaches() -> None:
    consistency = torch.tensor([-0.1, 0.0, 0.3, 1.0, 1.7], requires_grad=True)
    alpha = next_alpha(consistency)
    torch.testing.assert_close(alpha, torch.tensor([0.0, 0.0, 0.3, 1.0, 1.0]))
    assert not alpha.requires_grad


def test_ght_rejects_wrong_shapes() -> None:
    z_s, z_t, g_s, g_t = _inputs()
    with pytest.raises(ValueError, match="alpha"):
        ght_interpolate(z_s, z_t, g_s, g_t, torch.zeros(5))
    with pytest.raises(ValueError, match="z_t"):
        ght_interpolate(z_s, z_t[:, :, :8], g_s, g_t, 0.5)
    with pytest.raises(ValueError, match="g_t"):
        ght_consistency(z_s, g_s, z_t, g_s, g_t[:, :1])
