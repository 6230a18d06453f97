"""The gaze redirector: encoder, latent rotation with a strength dial, and warp-based decoder."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from engine.model.config import RedirectorConfig
from engine.model.decoder import Decoded, Decoder
from engine.model.encoder import Encoder, Factors
from engine.model.guards import check_batch_vector, check_pitch_yaw, check_strip
from engine.model.layers import register_calibration
from engine.model.rotation import interpolate_labels, redirect_embedding


class RedirectorOutput(NamedTuple):
    """Result of :meth:`Redirector.forward` (also the ONNX outputs, in this order).

    ``strip_out`` B x 3 x H x W in [0, 1]; ``flow`` B x 2 x H x W in strip pixels; ``residual`` B x 3 x H x W;
    ``mask`` B x 1 x H x W; ``gaze_estimate`` and ``head_estimate`` B x 2, the encoder's (pitch, yaw)
    pseudo-labels of the *input* strip, in radians.
    """

    strip_out: Tensor
    flow: Tensor
    residual: Tensor
    mask: Tensor
    gaze_estimate: Tensor
    head_estimate: Tensor


class Redirector(nn.Module):
    """Redirects the gaze in normalised eye strips (STED-style rotatable latent, warp + residual output)."""

    def __init__(self, config: RedirectorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        # Multiplies every requested move, target minus source label (gaze pitch, yaw, head pitch, yaw): one as
        # trained; engine.train.calibrate sets it where the decoder renders moves shorter than the rotation asks.
        register_calibration(self, "move_gain", 1.0)

    def encode(self, strip: Tensor) -> Factors:
        """Encode strips B x 3 x H x W into :class:`Factors`."""
        factors: Factors = self.encoder(strip)
        return factors

    def aim(self, source: Tensor, target: Tensor, factor: Literal["gaze", "head"]) -> Tensor:
        """The label to rotate a ``factor`` embedding to so that the output shows ``target`` (B x 2 each):
        ``source + move_gain * (target - source)``, the requested move scaled by the calibrated gain."""
        gain = self.get_buffer("move_gain")
        gain = gain[:2] if factor == "gaze" else gain[2:]
        return source + gain * (target - source)

    def redirect(
        self,
        factors: Factors,
        target_gaze: Tensor,
        target_head: Tensor,
        source_gaze: Tensor | None = None,
        source_head: Tensor | None = None,
        calibrated: bool = False,
    ) -> Factors:
        """Rotate the gaze and head embeddings to ``target_gaze`` and ``target_head`` (B x 2 each).

        The embeddings are taken to be at ``source_gaze``/``source_head`` (default: the factors' own labels,
        i.e. the encoder's pseudo-labels), ``z' = R(target) R(source)^T z``. With ``calibrated`` the targets
        first go through :meth:`aim` (inference and evaluation; training rotates to the targets as asked, so
        that its losses see the decoder as it is). The returned factors carry the labels rotated to;
        appearance and skip features are unchanged.
        """
        batch = factors.gaze_emb.shape[0]
        check_pitch_yaw(target_gaze, batch, "target_gaze")
        check_pitch_yaw(target_head, batch, "target_head")
        g_s = factors.gaze_pl if source_gaze is None else source_gaze
        h_s = factors.head_pl if source_head is None else source_head
        if calibrated:
            target_gaze, target_head = self.aim(g_s, target_gaze, "gaze"), self.aim(h_s, target_head, "head")
        return replace(
            factors,
            gaze_emb=redirect_embedding(factors.gaze_emb, g_s, target_gaze),
            head_emb=redirect_embedding(factors.head_emb, h_s, target_head),
            gaze_pl=target_gaze,
            head_pl=target_head,
        )

    def decode(self, factors: Factors, strip: Tensor) -> Decoded:
        """Decode (possibly redirected) ``factors`` against the source ``strip`` B x 3 x H x W."""
        decoded: Decoded = self.decoder(factors, strip)
        return decoded

    def reconstruct(self, strip: Tensor) -> Decoded:
        """The network's reconstruction of ``strip``: decode its own, unrotated latent."""
        return self.decode(self.encode(strip), strip)

    def forward(self, strip: Tensor, target_gaze: Tensor, strength: Tensor) -> RedirectorOutput:
        """Redirect ``strip`` B x 3 x H x W toward ``target_gaze`` B x 2 with a per-sample ``strength`` B.

        The gaze embedding is rotated from the estimated gaze ``g_s`` toward ``g(s) = (1 − s)·g_s + s·g_t``
        (``s`` clamped to [0, 1]), through :meth:`aim`; the head embedding is left as it is (the target head is
        the estimated source head). At ``s = 0`` the latent is exactly the unrotated one, so the output is bit for bit
        :meth:`reconstruct`'s: ``R(g_s) R(g_s)^T`` is the identity only up to rounding, so those samples skip
        the rotation instead.
        """
        batch = check_strip(strip, self.config)
        check_pitch_yaw(target_gaze, batch, "target_gaze")
        check_batch_vector(strength, batch, "strength")
        factors = self.encode(strip)
        # Clamp rather than raise: values are not inspectable while the model is traced for export.
        s = strength.to(strip.dtype).clamp(0.0, 1.0)
        dial_gaze = self.aim(factors.gaze_pl, interpolate_labels(factors.gaze_pl, target_gaze, s), "gaze")  # -> B x 2
        rotated = redirect_embedding(factors.gaze_emb, factors.gaze_pl, dial_gaze)  # -> B x 3 x F
        off = (s <= 0.0).reshape(-1, 1, 1)  # -> B x 1 x 1
        moved = replace(factors, gaze_emb=torch.where(off, factors.gaze_emb, rotated), gaze_pl=dial_gaze)
        decoded = self.decode(moved, strip)
        return RedirectorOutput(
            strip_out=decoded.strip_out,
            flow=decoded.flow,
            residual=decoded.residual,
            mask=decoded.mask,
            gaze_estimate=factors.gaze_pl,
            head_estimate=factors.head_pl,
        )
