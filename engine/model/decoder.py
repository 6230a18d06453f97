"""The decoder: (redirected) latent + source strip -> warp field, residual and blend mask."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.model.config import RedirectorConfig
from engine.model.encoder import Factors
from engine.model.guards import check_strip
from engine.model.layers import ConvBlock, upsample2x
from engine.model.warp import upsample_flow, warp


class Decoded(NamedTuple):
    """What the decoder produces, all at strip resolution.

    ``strip_out`` B x 3 x H x W in [0, 1]; ``flow`` B x 2 x H x W in strip pixels (x, y; see
    :mod:`engine.model.warp`), bounded by ``max_flow_px``; ``residual`` B x 3 x H x W bounded by
    ``max_residual``; ``mask`` B x 1 x H x W in (0, 1).
    ``strip_out = clamp(warp(strip, flow) + mask·residual, 0, 1)``.
    """

    strip_out: Tensor
    flow: Tensor
    residual: Tensor
    mask: Tensor


class Decoder(nn.Module):
    """Latent -> low-resolution map -> warp field at 1/4 resolution -> residual and mask at full size."""

    def __init__(self, config: RedirectorConfig) -> None:
        super().__init__()
        self.config = config
        slope = config.negative_slope
        c0, c1, c2, c3 = config.decoder_channels
        bh, bw = config.bottleneck_size
        self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, c0 * bh * bw), nn.LeakyReLU(slope))
        n_deep = len(config.encoder_channels) - 3  # upsamplings from the bottleneck down to 1/8
        self.deep = nn.ModuleList(ConvBlock(c0 if i == 0 else c1, c1, 1, slope) for i in range(n_deep))
        eighth_channels = c1 if n_deep else c0
        self.quarter_res = ConvBlock(eighth_channels + config.skip_channels, c2, 1, slope)
        self.flow_head = nn.Conv2d(c2, 2, 3, padding=1)
        self.half_res = ConvBlock(c2 + 3, c3, 1, slope)
        self.full_head = nn.Conv2d(c3 + 3, 4, 3, padding=1)
        # Zero flow, zero residual and mask 0.5 at initialisation: the untrained model returns its input, a
        # sensible start for an image-to-image correction that mostly leaves pixels alone.
        for head in (self.flow_head, self.full_head):
            for param in head.parameters():
                nn.init.zeros_(param)

    def forward(self, factors: Factors, strip: Tensor) -> Decoded:
        """Decode ``factors`` (B x ...) for the source ``strip`` B x 3 x H x W into a :class:`Decoded`."""
        cfg = self.config
        _check_factors(factors, check_strip(strip, cfg), cfg)
        bh, bw = cfg.bottleneck_size
        x = self.from_latent(factors.latent())  # -> B x C0*h*w
        x = x.reshape(-1, cfg.decoder_channels[0], bh, bw)  # -> B x C0 x 4 x 16
        for block in self.deep:
            x = block(upsample2x(x))  # -> B x C1 x 2h x 2w, ending at 1/8 (B x 64 x 8 x 32)
        x = self.quarter_res(torch.cat((upsample2x(x), factors.skip), dim=1))  # -> B x C2 x 16 x 64
        # The field is produced at 1/4 resolution and upsampled bilinearly, which keeps it smooth.
        flow_low = cfg.max_flow_px * torch.tanh(self.flow_head(x))  # -> B x 2 x 16 x 64
        size = (cfg.height, cfg.width)
        flow = upsample_flow(flow_low, size)  # -> B x 2 x 64 x 256
        warped = warp(strip, flow, size)  # -> B x 3 x 64 x 256
        x = self.half_res(torch.cat((upsample2x(x), F.avg_pool2d(warped, 2)), dim=1))  # -> B x C3 x 32 x 128
        out = self.full_head(torch.cat((upsample2x(x), warped), dim=1))  # -> B x 4 x 64 x 256
        residual = cfg.max_residual * torch.tanh(out[:, :3])  # -> B x 3 x 64 x 256
        mask = torch.sigmoid(out[:, 3:])  # -> B x 1 x 64 x 256
        strip_out = (warped + mask * residual).clamp(0.0, 1.0)
        return Decoded(strip_out=strip_out, flow=flow, residual=residual, mask=mask)


def _check_factors(factors: Factors, batch: int, cfg: RedirectorConfig) -> None:
    """Check the factors' shapes agree with the config and the strip batch."""
    f = cfg.embedding_dim
    expected = {
        "appearance": (batch, cfg.appearance_dim),
        "gaze_emb": (batch, 3, f),
        "head_emb": (batch, 3, f),
        "skip": (batch, cfg.skip_channels, *cfg.flow_size),
    }
    for name, shape in expected.items():
        got = tuple(getattr(factors, name).shape)
        if got != shape:
            raise ValueError(f"factors.{name} must have shape {shape} for this strip batch, got {got}")
