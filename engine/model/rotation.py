"""Rotating the 3 x F embeddings between (pitch, yaw) labels, with the conventions of :mod:`engine.strip`."""

from __future__ import annotations

from torch import Tensor

from engine.model.guards import check_embedding, check_pitch_yaw
from engine.strip import rotation_from_pitch_yaw


def redirect_embedding(embedding: Tensor, source: Tensor, target: Tensor) -> Tensor:
    """Rotate a B x 3 x F embedding from ``source`` to ``target`` (pitch, yaw) B x 2.

    ``z' = R(target) · R(source)^T · z``: the embedding is first rotated to the canonical frame (label (0, 0))
    and then to the target; the rotation acts on the 3-dimensional axis, the F columns are independent.
    """
    batch = check_embedding(embedding, "embedding")
    check_pitch_yaw(source, batch, "source")
    check_pitch_yaw(target, batch, "target")
    relative = rotation_from_pitch_yaw(target) @ rotation_from_pitch_yaw(source).transpose(-1, -2)
    return relative @ embedding  # B x 3 x 3 @ B x 3 x F -> B x 3 x F


def interpolate_labels(source: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """``(1 - w) · source + w · target`` for (pitch, yaw) B x 2 and a per-sample weight B.

    For ``w == 0`` this returns ``source`` bit for bit (``1 * x + 0 * y == x`` in floating point, finite y).
    """
    check_pitch_yaw(source, source.shape[0], "source")
    check_pitch_yaw(target, source.shape[0], "target")
    if weight.ndim != 1 or weight.shape[0] != source.shape[0]:
        raise ValueError(f"weight must have shape ({source.shape[0]},), got {tuple(weight.shape)}")
    w = weight.unsqueeze(-1)  # -> B x 1
    return (1.0 - w) * source + w * target
