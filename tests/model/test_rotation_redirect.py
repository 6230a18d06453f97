"""Rotation algebra of the latent redirection."""

from __future__ import annotations

import math

import pytest
import torch

from engine.model.rotation import interpolate_labels, redirect_embedding
from engine.strip import pitch_yaw_to_vector, rotation_from_pitch_yaw


def _angles(batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 2, generator=gen, dtype=torch.float64) - 0.5) * math.pi * 0.9


def _embedding(batch: int, seed: int, f: int = 16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, f, generator=gen, dtype=torch.float64)


def test_rotation_is_orthonormal_with_unit_determinant() -> None:
    r = rotation_from_pitch_yaw(_angles(64, 0))
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    torch.testing.assert_close(r @ r.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(64, dtype=torch.float64))


def test_redirect_to_the_same_gaze_is_identity() -> None:
    g = _angles(8, 1)
    z = _embedding(8, 2)
    torch.testing.assert_close(redirect_embedding(z, g, g), z)


def test_redirect_there_and_back_returns_the_original() -> None:
    g_s, g_t = _angles(8, 3), _angles(8, 4)
    z = _embedding(8, 5)
    back = redirect_embedding(redirect_embedding(z, g_s, g_t), g_t, g_s)
    torch.testing.assert_close(back, z)


def test_redirect_moves_the_source_direction_onto_the_target_direction() -> None:
    # A column equal to the source gaze vector must become the target gaze vector (the strip's convention).
    g_s, g_t = _angles(8, 6), _angles(8, 7)
    z = pitch_yaw_to_vector(g_s).unsqueeze(-1)  # B x 3 x 1
    moved = redirect_embedding(z, g_s, g_t).squeeze(-1)
    torch.testing.assert_close(moved, pitch_yaw_to_vector(g_t))


def test_redirect_preserves_norms_per_column() -> None:
    g_s, g_t = _angles(4, 8), _angles(4, 9)
    z = _embedding(4, 10)
    torch.testing.assert_close(redirect_embedding(z, g_s, g_t).norm(dim=1), z.norm(dim=1))


def test_interpolate_labels_at_zero_weight_is_bit_exact() -> None:
    g_s, g_t = _angles(5, 11).float(), _angles(5, 12).float()
    assert torch.equal(interpolate_labels(g_s, g_t, torch.zeros(5)), g_s)
    torch.testing.assert_close(interpolate_labels(g_s, g_t, torch.ones(5)), g_t)


@pytest.mark.parametrize(
    ("z_shape", "s_shape", "t_shape"),
    [((2, 4, 16), (2, 2), (2, 2)), ((2, 3, 16), (2, 3), (2, 2)), ((2, 3, 16), (2, 2), (3, 2))],
)
def test_redirect_rejects_wrong_shapes(
    z_shape: tuple[int, ...], s_shape: tuple[int, ...], t_shape: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="must"):
        redirect_embedding(torch.zeros(z_shape), torch.zeros(s_shape), torch.zeros(t_shape))


def test_interpolate_labels_rejects_wrong_weight_shape() -> None:
    with pytest.raises(ValueError, match="weight"):
        interpolate_labels(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 1))
