"""Gaze hardness-aware transformation (GHT; Park, Kim & Song, WACV 2023).

STED learns to redirect a gaze embedding ``z_s`` (label ``g_s``) to a target ``g_t`` in one step. GHT adds an
*intermediate* gaze feature between the source and the target embeddings (of two images of one subject),

    z_tr = α · z_s + (1 − α) · z_t,        g_tr = α · g_s + (1 − α) · g_t,

and asks that redirecting either the source or the intermediate feature to the target gives the same
embedding. The per-sample weight α follows the *hardness* of the pair: a pair whose redirection is still
inconsistent gets an intermediate feature close to the source (an easier, nearly identical constraint), and
once it becomes consistent α falls toward 0, i.e. the intermediate feature becomes the target embedding itself
and the constraint becomes the full source-to-target one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.model.guards import check_embedding, check_pitch_yaw
from engine.model.rotation import redirect_embedding


def _alpha_column(alpha: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """α as a B x 1 tensor (a float applies to every sample)."""
    if isinstance(alpha, float | int):
        return torch.full((batch, 1), float(alpha), dtype=like.dtype, device=like.device)
    if alpha.ndim != 1 or alpha.shape[0] != batch:
        raise ValueError(f"alpha must be a float or have shape ({batch},), got {tuple(alpha.shape)}")
    return alpha.to(like.dtype).unsqueeze(-1)


def ght_interpolate(z_s: Tensor, z_t: Tensor, g_s: Tensor, g_t: Tensor, alpha: Tensor | float) -> tuple[Tensor, Tensor]:
    """The intermediate gaze feature and label ``(z_tr, g_tr)`` for per-sample ``alpha`` (B or a float).

    ``z_tr = α·z_s + (1−α)·z_t`` (B x 3 x F) and ``g_tr = α·g_s + (1−α)·g_t`` (B x 2): α = 1 gives the source,
    α = 0 the target.
    """
    batch = check_embedding(z_s, "z_s")
    check_embedding(z_t, "z_t", z_s.shape[2])
    if z_t.shape[0] != batch:
        raise ValueError(f"z_s and z_t differ in batch size: {z_s.shape[0]} vs {z_t.shape[0]}")
    check_pitch_yaw(g_s, batch, "g_s")
    check_pitch_yaw(g_t, batch, "g_t")
    a = _alpha_column(alpha, batch, z_s)  # -> B x 1
    z_tr = a.unsqueeze(-1) * z_s + (1.0 - a.unsqueeze(-1)) * z_t  # -> B x 3 x F
    g_tr = a * g_s + (1.0 - a) * g_t  # -> B x 2
    return z_tr, g_tr


def ght_consistency(z_s: Tensor, g_s: Tensor, z_tr: Tensor, g_tr: Tensor, g_t: Tensor) -> Tensor:
    """Per-sample inconsistency B of redirecting the source and the intermediate feature to the target.

    ``1 − cos(R(g_t) R(g_tr)^T z_tr, R(g_t) R(g_s)^T z_s)``, the cosine taken over the flattened 3F vectors.
    0 when both redirections agree in direction, up to 2 when they are opposite.
    """
    batch = check_embedding(z_s, "z_s")
    check_embedding(z_tr, "z_tr", z_s.shape[2])
    for name, labels in (("g_s", g_s), ("g_tr", g_tr), ("g_t", g_t)):
        check_pitch_yaw(labels, batch, name)
    from_source = redirect_embedding(z_s, g_s, g_t).flatten(1)  # -> B x 3F
    from_intermediate = redirect_embedding(z_tr, g_tr, g_t).flatten(1)  # -> B x 3F
    return 1.0 - F.cosine_similarity(from_intermediate, from_source, dim=1, eps=1e-8)


def next_alpha(consistency: Tensor) -> Tensor:
    """The hardness-aware update of α for the next step: ``α ← clamp(1 − cos, 0, 1)``, per sample.

    ``consistency`` is the output of :func:`ght_consistency` (``1 − cos``). A pair that is hard (low cosine)
    gets a large α, i.e. an intermediate feature near the source, which is easy to be consistent with; an easy
    pair (cosine near 1) gets α near 0, i.e. the target embedding itself, the full constraint. The result is
    detached: α is a curriculum, not something to differentiate through.
    """
    return consistency.detach().clamp(0.0, 1.0)
