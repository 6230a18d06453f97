"""The gaze-redirection network (pure modules; training lives in :mod:`engine.train`)."""

from engine.model.config import RedirectorConfig
from engine.model.decoder import Decoded, Decoder
from engine.model.encoder import Encoder, Factors
from engine.model.ght import ght_consistency, ght_interpolate, next_alpha
from engine.model.redirector import Redirector, RedirectorOutput
from engine.model.rotation import interpolate_labels, redirect_embedding
from engine.model.warp import upsample_flow, warp

__all__ = [
    "Decoded",
    "Decoder",
    "Encoder",
    "Factors",
    "Redirector",
    "RedirectorConfig",
    "RedirectorOutput",
    "ght_consistency",
    "ght_interpolate",
    "interpolate_labels",
    "next_alpha",
    "redirect_embedding",
    "upsample_flow",
    "warp",
]
