"""Losses of the gaze redirector (STED + GHT): pure functions and one small module, no optimisers.

All losses return a scalar (the mean over the batch) unless stated otherwise. Angles are (pitch, yaw) radians
with the conventions of :mod:`engine.strip`; rotatable embeddings are B x 3 x F.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.model.ght import ght_consistency
from engine.model.guards import check_embedding, check_pitch_yaw
from engine.model.rotation import redirect_embedding
from engine.model.warp import FOLD_REACH_PX, flow_jacobian_det, sample_flow
from engine.strip import pitch_yaw_to_vector

# Keeps acos and sqrt away from their infinite-gradient points (cos = ±1, distance 0).
_EPS = 1e-6


def reconstruction_l1(prediction: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean absolute error between images B x C x H x W, optionally weighted per pixel (B x 1 x H x W).

    With a weight, the sum of weighted errors is divided by the weight's total (times C), so the value stays
    a per-pixel mean over the weighted region.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction and target differ in shape: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    error = (prediction - target).abs()
    if weight is None:
        return error.mean()
    if weight.ndim != prediction.ndim or weight.shape[1] != 1 or weight.shape[2:] != prediction.shape[2:]:
        raise ValueError(
            f"weight must be B x 1 x H x W for images {tuple(prediction.shape)}, got {tuple(weight.shape)}"
        )
    total = weight.expand_as(error).sum().clamp_min(_EPS)
    return (error * weight).sum() / total


def pupil_flow_loss(flow: Tensor, source_pupil: Tensor, target_pupil: Tensor, valid: Tensor) -> Tensor:
    """How far, in strip pixels, the backward warp by ``flow`` (B x 2 x H x W) misses the source's pupils at the
    target's: the output pixel at a target pupil ``p_t`` must sample the source at its pupil ``p_s``, i.e.
    ``p_t + flow(p_t) = p_s``. Pupils are B x 2 x 2 ((x, y) strip pixels, both eyes).

    Loss = mean over the ``valid`` rows (B bool: both eyes open in both strips) and both eyes of
    ``sum_xy huber_1px(p_t + flow(p_t) - p_s)``; 0 (still part of the graph) when no row is valid. Unlike the
    image losses, whose gradient through bilinear sampling only sees a pixel or two around each sample, this
    says where the pupil must go however far the warp is from it.
    """
    if source_pupil.shape != target_pupil.shape:
        raise ValueError(
            f"source and target pupils differ in shape: {tuple(source_pupil.shape)} vs {tuple(target_pupil.shape)}"
        )
    if valid.shape != (flow.shape[0],) or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool mask of shape ({flow.shape[0]},), got {valid.dtype} {valid.shape}")
    reached = target_pupil + sample_flow(flow, target_pupil)  # -> B x 2 x 2
    error = F.smooth_l1_loss(reached, source_pupil, reduction="none", beta=1.0).sum(-1)  # -> B x 2
    weight = valid.to(error.dtype).unsqueeze(1).expand_as(error)
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


# The fold loss starts below this determinant: a squeeze to a fifth of the area is still allowed (the sclera and
# skin beside a pupil that moves 8 px must make room within a few pixels), a fold never.
FOLD_MARGIN = 0.2


def fold_loss(flow: Tensor, margin: float = FOLD_MARGIN, weight: Tensor | None = None) -> Tensor:
    """Mean over pixels of ``relu(margin - det J)``, where ``J`` is the Jacobian of the backward warp's sampling map
    ``p -> p + flow(p)`` (:func:`engine.model.warp.flow_jacobian_det`; flow B x 2 x H x W in strip pixels).

    Zero for any warp that nowhere squeezes the source below ``margin`` of its area; grows with the depth and
    extent of folds (determinant at or below 0), where the output would show a stretch of the source twice.
    ``weight`` (B x (H-1) x (W-1), optional) scales each pixel square's hinge before the mean, e.g.
    :func:`eye_cells` to count only the folds at the eyes.
    """
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    hinge = F.relu(margin - flow_jacobian_det(flow))  # -> B x (H-1) x (W-1)
    if weight is not None:
        if weight.shape != hinge.shape:
            raise ValueError(f"weight must be B x (H-1) x (W-1) = {tuple(hinge.shape)}, got {tuple(weight.shape)}")
        hinge = hinge * weight
    return hinge.mean()


def eye_cells(mask: Tensor, reach_px: int = FOLD_REACH_PX) -> Tensor:
    """How much each pixel square of :func:`engine.model.warp.flow_jacobian_det` belongs to the eye:
    ``mask`` B x 1 x H x W (the visible eyeball, in [0, 1]) -> B x (H-1) x (W-1) in [0, 1].

    A square takes the mean of its four pixels, then the largest value within ``reach_px`` (a dilation; by default
    the reach of the "folded beside a pupil" reading), so that squares just outside the eyeball, on the lids beside
    the iris, count fully.
    """
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] < 2 or mask.shape[3] < 2:
        raise ValueError(f"mask must be B x 1 x H x W with H, W >= 2, got shape {tuple(mask.shape)}")
    if reach_px < 0:
        raise ValueError(f"reach_px must be non-negative, got {reach_px}")
    cells = F.avg_pool2d(mask, 2, stride=1)  # -> B x 1 x (H-1) x (W-1)
    if reach_px > 0:
        cells = F.max_pool2d(cells, 2 * reach_px + 1, stride=1, padding=reach_px)
    return cells[:, 0]


def angular_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """Mean angle in radians between the directions of (pitch, yaw) B x 2 predictions and targets.

    Used for the pseudo-label loss (the encoder's gaze and head estimates against the labels).
    """
    check_pitch_yaw(predicted, predicted.shape[0], "predicted")
    check_pitch_yaw(target, predicted.shape[0], "target")
    cos = (pitch_yaw_to_vector(predicted) * pitch_yaw_to_vector(target)).sum(-1)
    return torch.acos(cos.clamp(-1.0 + _EPS, 1.0 - _EPS)).mean()


def pseudo_label_loss(gaze_pl: Tensor, head_pl: Tensor, gaze_label: Tensor, head_label: Tensor) -> Tensor:
    """Angular error of both pseudo-labels: ``angular(gaze_pl, gaze) + angular(head_pl, head)`` (radians)."""
    return angular_loss(gaze_pl, gaze_label) + angular_loss(head_pl, head_label)


def embedding_consistency_loss(z_a: Tensor, g_a: Tensor, z_b: Tensor, g_b: Tensor) -> Tensor:
    """Mean ``1 − cos(R(g_b) R(g_a)^T z_a, z_b)`` over the flattened 3F vectors.

    ``z_a`` (at label ``g_a``) and ``z_b`` (at ``g_b``) are the same factor of two images of one subject (or
    an image and its redirected re-encoding); rotated to a common label they should point the same way.
    Rotations keep the cosine, so this equals comparing both embeddings in the canonical frame, ``R(g)^T z``.
    """
    batch = check_embedding(z_a, "z_a")
    check_embedding(z_b, "z_b", z_a.shape[2])
    check_pitch_yaw(g_a, batch, "g_a")
    check_pitch_yaw(g_b, batch, "g_b")
    moved = redirect_embedding(z_a, g_a, g_b).flatten(1)  # -> B x 3F
    return (1.0 - F.cosine_similarity(moved, z_b.flatten(1), dim=1, eps=1e-8)).mean()


def ght_consistency_loss(z_s: Tensor, g_s: Tensor, z_tr: Tensor, g_tr: Tensor, g_t: Tensor) -> Tensor:
    """The GHT gaze-consistency loss: the batch mean of :func:`engine.model.ght.ght_consistency`."""
    return ght_consistency(z_s, g_s, z_tr, g_tr, g_t).mean()


def sample_beta22(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Samples of Beta(2, 2) on the generator's device, deterministic given ``generator``.

    The median of three independent U(0, 1) draws is Beta(2, 2) distributed (the 2nd order statistic of 3),
    which lets a ``torch.Generator`` drive it (``torch.distributions.Beta`` takes none).
    """
    uniform = torch.rand((*shape, 3), generator=generator, device=generator.device)
    return uniform.median(dim=-1).values


def _distance(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distance over the last axis, with a gradient that stays finite at 0."""
    return ((a - b).pow(2).sum(-1) + _EPS * _EPS).sqrt()


def structured_gaze_loss(
    gaze_emb: Tensor,
    head_emb: Tensor,
    appearance: Tensor,
    projection: Callable[[Tensor], Tensor],
    generator: torch.Generator,
    margin: float = 1.0,
) -> Tensor:
    """The structured-gaze (SG) metric-learning loss over a mini-batch ("push and pull").

    With ``n(v) = v / ‖v‖`` and, for sample j, ``g_j = n(flatten(gaze_emb_j))``,
    ``h_j = n(flatten(head_emb_j))`` and ``a_j = n(projection(appearance_j))`` (all in R^{3F}), every
    ``g_i`` is an anchor with

    * positives ``P_i = {g_j : j ≠ i} ∪ {n((1 + β_ij) g_j − β_ij g_i) : j ≠ i}`` (the second set extrapolates
      each positive away from the anchor: a hard positive);
    * negatives ``N_i = {h_j, a_j : all j} ∪ {n(g_i + w_im (m − g_i)) : m ∈ {h_j, a_j}}`` with
      ``w_im = k_im + (1 − k_im) β'_im`` and ``k_im = ⟨g_i, n(g_i − m)⟩ ∈ [0, 1]`` (the second set blends each
      negative toward the anchor, at most down to weight k: a hard negative);

    and ``β, β' ~ Beta(2, 2)`` drawn independently per pair from ``generator``. The loss is the triplet margin
    loss averaged over every anchor and every (positive, negative) combination::

        L = 1 / (B · |P| · |N|) · Σ_i Σ_{p ∈ P_i} Σ_{m ∈ N_i} max(0, ‖g_i − p‖ − ‖g_i − m‖ + margin)

    with ``|P| = 2(B − 1)`` and ``|N| = 4B``. It pulls the gaze embeddings of the batch together and pushes
    the head and appearance factors away from them. ``projection`` maps B x A appearance vectors to B x 3F.
    Every combination is materialised: memory grows as 8·B³ (2 M floats at B = 64).
    """
    batch = check_embedding(gaze_emb, "gaze_emb")
    check_embedding(head_emb, "head_emb", gaze_emb.shape[2])
    if head_emb.shape[0] != batch or appearance.ndim != 2 or appearance.shape[0] != batch:
        raise ValueError(
            f"gaze_emb, head_emb and appearance must share the batch size: {tuple(gaze_emb.shape)}, "
            f"{tuple(head_emb.shape)}, {tuple(appearance.shape)}"
        )
    if batch < 2:
        raise ValueError(f"the structured gaze loss needs at least 2 samples, got {batch}")
    dim = gaze_emb.shape[1] * gaze_emb.shape[2]
    projected = projection(appearance)
    if tuple(projected.shape) != (batch, dim):
        raise ValueError(f"projection must map appearance to {batch} x {dim}, got {tuple(projected.shape)}")

    g = F.normalize(gaze_emb.flatten(1), dim=1)  # -> B x D
    others = torch.cat((F.normalize(head_emb.flatten(1), dim=1), F.normalize(projected, dim=1)))  # -> 2B x D
    anchor = g.unsqueeze(1)  # -> B x 1 x D

    beta_p = sample_beta22((batch, batch), generator).to(g).unsqueeze(-1)  # -> B x B x 1
    hard_pos = F.normalize((1.0 + beta_p) * g.unsqueeze(0) - beta_p * anchor, dim=-1)  # -> B x B x D
    d_pos = torch.cat((_distance(anchor, g.unsqueeze(0)), _distance(anchor, hard_pos)), dim=1)  # -> B x 2B
    not_self = ~torch.eye(batch, dtype=torch.bool, device=g.device)
    keep = torch.cat((not_self, not_self), dim=1)  # -> B x 2B

    negatives = others.unsqueeze(0)  # -> 1 x 2B x D
    k = (anchor * F.normalize(anchor - negatives, dim=-1)).sum(-1, keepdim=True)  # -> B x 2B x 1
    beta_n = sample_beta22((batch, 2 * batch), generator).to(g).unsqueeze(-1)  # -> B x 2B x 1
    weight = k + (1.0 - k) * beta_n
    hard_neg = F.normalize(anchor + weight * (negatives - anchor), dim=-1)  # -> B x 2B x D
    d_neg = torch.cat((_distance(anchor, negatives), _distance(anchor, hard_neg)), dim=1)  # -> B x 4B

    triplets = F.relu(d_pos.unsqueeze(2) - d_neg.unsqueeze(1) + margin)  # -> B x 2B x 4B
    valid = keep.unsqueeze(2).expand_as(triplets)
    return triplets[valid].mean()


class StructuredGazeLoss(nn.Module):
    """:func:`structured_gaze_loss` with its own learnable appearance projection (A -> 3F, no bias)."""

    def __init__(self, appearance_dim: int, embedding_dim: int, margin: float = 1.0) -> None:
        super().__init__()
        self.projection = nn.Linear(appearance_dim, 3 * embedding_dim, bias=False)
        self.margin = margin

    def forward(self, gaze_emb: Tensor, head_emb: Tensor, appearance: Tensor, generator: torch.Generator) -> Tensor:
        """The SG loss of one batch (see :func:`structured_gaze_loss`)."""
        return structured_gaze_loss(gaze_emb, head_emb, appearance, self.projection, generator, self.margin)
