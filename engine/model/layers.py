"""Small building blocks shared by the encoder and the decoder (and the estimators' calibration offset)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvBlock(nn.Module):
    """3 x 3 convolution, instance norm and LeakyReLU.

    Instance norm (per sample, per channel) rather than batch norm: the runtime runs at batch 1 and training
    mixes synthetic and real strips, so statistics must not depend on the rest of the batch.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, negative_slope: float) -> None:
        super().__init__()
        # No conv bias: the norm's affine shift replaces it.
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.InstanceNorm2d(out_channels, affine=True)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        """B x Cin x H x W -> B x Cout x H/stride x W/stride."""
        out: Tensor = self.act(self.norm(self.conv(x)))
        return out


def upsample2x(x: Tensor) -> Tensor:
    """Bilinear 2x upsampling (B x C x H x W -> B x C x 2H x 2W)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def register_calibration(module: nn.Module, name: str, default: float) -> None:
    """Give ``module`` a buffer ``name`` of 4 values (gaze pitch, yaw, head pitch, yaw), each ``default``, that
    engine.train.calibrate sets after training. Checkpoints written before the buffer existed load with it at
    ``default`` (uncalibrated), also under ``strict`` loading."""
    module.register_buffer(name, torch.full((4,), default))

    def fill_missing(target: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
        if prefix + name not in state_dict:
            state_dict[prefix + name] = torch.full_like(target.get_buffer(name), default)

    module.register_load_state_dict_pre_hook(fill_missing)  # type: ignore[no-untyped-call]


def register_offset(module: nn.Module, name: str) -> None:
    """A zero calibration buffer of 4 angles (radians) that ``module``'s forward subtracts from its estimates."""
    register_calibration(module, name, 0.0)
