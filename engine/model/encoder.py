"""The encoder: eye strip -> disentangled factors (appearance, rotatable gaze and head embeddings, labels)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.model.config import RedirectorConfig
from engine.model.guards import check_strip
from engine.model.layers import ConvBlock, register_offset


@dataclass(frozen=True)
class Factors:
    """The latent code of a batch of strips.

    Shapes: ``appearance`` B x A (not rotated by redirection); ``gaze_emb`` and ``head_emb`` B x 3 x F
    (rotatable: the rotation acts on the 3 axis); ``gaze_pl`` and ``head_pl`` B x 2, the (pitch, yaw) labels
    the embeddings are expressed at (the encoder's pseudo-labels, or the targets after redirection); ``skip``
    B x S x H/4 x W/4, the encoder's spatial features handed to the decoder to locate the eyes (source layout
    only; no target information).
    """

    appearance: Tensor
    gaze_emb: Tensor
    head_emb: Tensor
    gaze_pl: Tensor
    head_pl: Tensor
    skip: Tensor

    def latent(self) -> Tensor:
        """The flattened latent B x (A + 6F): appearance, gaze embedding, head embedding."""
        return torch.cat((self.appearance, self.gaze_emb.flatten(1), self.head_emb.flatten(1)), dim=1)


class Encoder(nn.Module):
    """Strided conv stages to a small bottleneck, then fully connected heads for each factor."""

    def __init__(self, config: RedirectorConfig) -> None:
        super().__init__()
        self.config = config
        slope = config.negative_slope
        stages: list[nn.Module] = []
        in_channels = 3
        for channels in config.encoder_channels:
            stages.append(
                nn.Sequential(ConvBlock(in_channels, channels, 2, slope), ConvBlock(channels, channels, 1, slope))
            )
            in_channels = channels
        self.stages = nn.ModuleList(stages)
        self.skip = nn.Sequential(nn.Conv2d(config.encoder_channels[1], config.skip_channels, 1), nn.LeakyReLU(slope))
        self.squeeze = nn.Sequential(nn.Conv2d(in_channels, config.bottleneck_channels, 1), nn.LeakyReLU(slope))
        bh, bw = config.bottleneck_size
        self.fc = nn.Sequential(nn.Linear(config.bottleneck_channels * bh * bw, config.hidden_dim), nn.LeakyReLU(slope))
        f3 = 3 * config.embedding_dim
        self.to_appearance = nn.Linear(config.hidden_dim, config.appearance_dim)
        self.to_gaze = nn.Linear(config.hidden_dim, f3)
        self.to_head = nn.Linear(config.hidden_dim, f3)
        self.to_gaze_pl = nn.Linear(config.hidden_dim, 2)
        self.to_head_pl = nn.Linear(config.hidden_dim, 2)
        # Subtracted from the pseudo-labels (gaze pitch, yaw, head pitch, yaw; radians). Zero as trained; set by
        # engine.train.calibrate so that the labels are unbiased on labelled renders. The rotation starts from
        # these labels, so a biased label moves every redirected gaze by that bias (see the calibration module).
        register_offset(self, "label_offset")

    def forward(self, strip: Tensor) -> Factors:
        """B x 3 x H x W in [0, 1] -> :class:`Factors`."""
        check_strip(strip, self.config)
        x = strip
        skip: Tensor | None = None
        for i, stage in enumerate(self.stages):
            x = stage(x)  # stage i -> B x C_i x H/2^(i+1) x W/2^(i+1)
            if i == 1:
                skip = self.skip(x)  # -> B x S x H/4 x W/4
        if skip is None:  # unreachable: the config guarantees >= 3 stages
            raise RuntimeError("encoder has fewer than two stages")
        x = self.squeeze(x)  # -> B x Cb x H/2^n x W/2^n (e.g. B x 32 x 4 x 16)
        hidden = self.fc(x.flatten(1))  # -> B x hidden
        f = self.config.embedding_dim
        offset = self.get_buffer("label_offset")
        return Factors(
            appearance=self.to_appearance(hidden),  # -> B x A
            gaze_emb=self.to_gaze(hidden).reshape(-1, 3, f),  # -> B x 3 x F
            head_emb=self.to_head(hidden).reshape(-1, 3, f),  # -> B x 3 x F
            # Bounded to (-pi/2, pi/2): the physically possible range of both angles.
            gaze_pl=0.5 * math.pi * torch.tanh(self.to_gaze_pl(hidden)) - offset[:2],  # -> B x 2
            head_pl=0.5 * math.pi * torch.tanh(self.to_head_pl(hidden)) - offset[2:],  # -> B x 2
            skip=skip,
        )
