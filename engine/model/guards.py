"""Input checks at the model's public boundaries: wrong shapes fail early with a readable ValueError.

The checks only read static shapes (never values), so they also hold while the model is traced for export.
"""

from __future__ import annotations

from torch import Tensor

from engine.model.config import RedirectorConfig


def check_strip(strip: Tensor, config: RedirectorConfig, name: str = "strip") -> int:
    """Check ``strip`` is a floating B x 3 x H x W batch at the configured size; return B."""
    expected = (3, config.height, config.width)
    if strip.ndim != 4 or tuple(strip.shape[1:]) != expected:
        raise ValueError(f"{name} must be B x 3 x {config.height} x {config.width}, got shape {tuple(strip.shape)}")
    if not strip.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor in [0, 1], got dtype {strip.dtype}")
    # Not int(): while exporting, the batch size is symbolic and int() would freeze it.
    return strip.shape[0]


def check_pitch_yaw(angles: Tensor, batch: int, name: str) -> None:
    """Check ``angles`` is a B x 2 (pitch, yaw) tensor."""
    if angles.ndim != 2 or angles.shape[1] != 2 or angles.shape[0] != batch:
        raise ValueError(f"{name} must be {batch} x 2 (pitch, yaw), got shape {tuple(angles.shape)}")


def check_batch_vector(values: Tensor, batch: int, name: str) -> None:
    """Check ``values`` holds one scalar per sample (shape B)."""
    if values.ndim != 1 or values.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(values.shape)}")


def check_embedding(embedding: Tensor, name: str, embedding_dim: int | None = None) -> int:
    """Check ``embedding`` is a B x 3 x F rotatable embedding (F = ``embedding_dim`` if given); return B."""
    if embedding.ndim != 3 or embedding.shape[1] != 3:
        raise ValueError(f"{name} must be B x 3 x F, got shape {tuple(embedding.shape)}")
    if embedding_dim is not None and embedding.shape[2] != embedding_dim:
        raise ValueError(f"{name} must be B x 3 x {embedding_dim}, got shape {tuple(embedding.shape)}")
    return embedding.shape[0]


def check_flow(flow: Tensor, image: Tensor) -> None:
    """Check ``flow`` is B x 2 x H x W for an image B x C x H x W."""
    if image.ndim != 4:
        raise ValueError(f"image must be B x C x H x W, got shape {tuple(image.shape)}")
    b, _, h, w = image.shape
    if flow.ndim != 4 or tuple(flow.shape) != (b, 2, h, w):
        raise ValueError(
            f"flow must be {b} x 2 x {h} x {w} to warp an image of shape {tuple(image.shape)}, got {tuple(flow.shape)}"
        )
