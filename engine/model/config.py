"""Hyper-parameters of the gaze redirector, passed explicitly to every module that needs them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedirectorConfig:
    """Architecture of :class:`engine.model.redirector.Redirector`.

    The defaults give ~2 M parameters (~8 MB in fp32) and fit the 64 x 256 strip of
    :data:`engine.strip.DEFAULT_STRIP`. The strip's height and width must be multiples of ``2 ** len(
    encoder_channels)`` because every encoder stage halves the resolution.

    Attributes:
        height: strip height in pixels.
        width: strip width in pixels.
        encoder_channels: output channels of the encoder stages; each stage halves the resolution.
        bottleneck_channels: channels the last encoder map is squeezed to before flattening.
        hidden_dim: width of the fully connected layer between the bottleneck and the factors.
        appearance_dim: length of the (non-rotatable) appearance vector.
        embedding_dim: F, the number of 3-vectors in each rotatable embedding (gaze and head are 3 x F).
        decoder_channels: channels of the decoder at 1/2**n (the latent map), 1/8, 1/4 and 1/2 resolution.
        skip_channels: channels of the encoder's 1/4-resolution map handed to the decoder (spatial layout
            for the flow; carries no target gaze, which only the rotated latent does).
        max_flow_px: bound of the warp field, in strip pixels.
        max_residual: bound of the additive residual (image intensities are in [0, 1]).
        negative_slope: LeakyReLU slope.
    """

    height: int = 64
    width: int = 256
    encoder_channels: tuple[int, ...] = (24, 48, 96, 192)
    bottleneck_channels: int = 32
    hidden_dim: int = 256
    appearance_dim: int = 64
    embedding_dim: int = 16
    decoder_channels: tuple[int, int, int, int] = (64, 64, 32, 16)
    skip_channels: int = 16
    max_flow_px: float = 8.0
    max_residual: float = 0.25
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        if len(self.encoder_channels) < 3:
            raise ValueError(f"encoder_channels needs at least 3 stages (down to 1/8), got {self.encoder_channels}")
        if len(self.decoder_channels) != 4:
            raise ValueError(f"decoder_channels needs 4 entries, got {self.decoder_channels}")
        factor = 2 ** len(self.encoder_channels)
        if self.height % factor or self.width % factor or self.height <= 0 or self.width <= 0:
            raise ValueError(
                f"strip size {self.height} x {self.width} must be positive multiples of {factor} "
                f"(2 ** number of encoder stages)"
            )
        positive = {
            "bottleneck_channels": self.bottleneck_channels,
            "hidden_dim": self.hidden_dim,
            "appearance_dim": self.appearance_dim,
            "embedding_dim": self.embedding_dim,
            "skip_channels": self.skip_channels,
            **{f"encoder_channels[{i}]": c for i, c in enumerate(self.encoder_channels)},
            **{f"decoder_channels[{i}]": c for i, c in enumerate(self.decoder_channels)},
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_flow_px <= 0 or self.max_residual <= 0:
            raise ValueError("max_flow_px and max_residual must be positive")

    @property
    def downsample(self) -> int:
        """Total downsampling factor of the encoder."""
        return int(2 ** len(self.encoder_channels))

    @property
    def bottleneck_size(self) -> tuple[int, int]:
        """(height, width) of the encoder's last feature map."""
        return self.height // self.downsample, self.width // self.downsample

    @property
    def flow_size(self) -> tuple[int, int]:
        """(height, width) at which the warp field is produced (1/4 of the strip), before upsampling."""
        return self.height // 4, self.width // 4

    @property
    def latent_dim(self) -> int:
        """Length of the flattened latent: appearance + gaze (3F) + head (3F)."""
        return self.appearance_dim + 6 * self.embedding_dim
