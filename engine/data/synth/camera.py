"""What a webcam does to the light: defocus, sensor resolution and noise, exposure, white balance, gamma, JPEG.

The renderer draws at the sensor's (random, lower) resolution; this module turns that radiance into the 8-bit
looking image a webcam delivers and resamples it to the strip size, as the runtime's strip cut does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class CameraParams:
    """Per-image camera settings (leading batch dimension B)."""

    exposure: Tensor  # B, gain on linear radiance
    white_balance: Tensor  # B x 3, channel gains (the camera's white-balance error)
    blur: Tensor  # B, Gaussian defocus sigma in sensor pixels
    read_noise: Tensor  # B, std of signal-independent noise (linear units)
    shot_noise: Tensor  # B, scale of signal-dependent noise
    jpeg_quality: Tensor  # B, 1..100; 100 or more means no compression

    def __len__(self) -> int:
        return int(self.exposure.shape[0])


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with a per-image sigma (B x C x H x W)."""
    b, c, h, w = x.shape
    radius = 3
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.clamp_min(1e-3).view(b, 1)
    k = torch.exp(-(taps**2) / (2 * s * s))
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C) x taps
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


def _dct_matrix(device: torch.device, dtype: torch.dtype) -> Tensor:
    n = 8
    k = torch.arange(n, dtype=dtype, device=device)
    m = torch.cos(math.pi * (2 * k.unsqueeze(0) + 1) * k.unsqueeze(1) / (2 * n)) * math.sqrt(2.0 / n)
    m[0] = m[0] / math.sqrt(2.0)
    return m


# The standard JPEG quantisation tables (ITU T.81, Annex K) for luminance and chrominance.
_Q_LUMA = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)
_Q_CHROMA = torch.full((8, 8), 99.0)
_Q_CHROMA[:4, :4] = torch.tensor(
    [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float32
)


def _quant_tables(quality: Tensor, base: Tensor) -> Tensor:
    """IJG quality scaling of a base table, per image: B x 8 x 8."""
    q = quality.clamp(1.0, 100.0)
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q).view(-1, 1, 1)
    return ((base.to(q.device) * scale + 50.0) / 100.0).floor().clamp(1.0, 255.0)


def _blockwise(x: Tensor, table: Tensor, dct: Tensor) -> Tensor:
    """Quantise the 8 x 8 block DCT of one plane per image (B x H x W, H and W multiples of 8).

    The 2-D DCT of a block X is D X D^T; on the row-major 64-vector of X that is the Kronecker product D (x) D,
    so every block of the batch goes through one 64 x 64 matrix product (instead of millions of 8 x 8 ones).
    """
    b, h, w = x.shape
    blocks = x.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, -1, 64)  # B x blocks x 64
    kron = torch.kron(dct, dct)
    coeff = blocks @ kron.T
    t = table.reshape(b, 1, 64)
    coeff = torch.round(coeff / t) * t
    out = coeff @ kron
    return out.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w)


# RGB (0..255) -> Y, Cb, Cr (JFIF), and back
_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_TO_RGB = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])


def _mix_channels(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix`` (3 x 3) applied to the channels of ``x`` (B x 3 x H x W): one pass instead of nine."""
    b, c, h, w = x.shape
    return (matrix.to(x.device, x.dtype) @ x.reshape(b, c, h * w)).view(b, c, h, w)


def jpeg(x: Tensor, quality: Tensor) -> Tensor:
    """Baseline JPEG round trip (4:2:0 chroma, standard tables) of images in [0, 1], per-image quality.

    Pure torch, so it runs wherever the renderer runs; images with quality >= 100 pass through unchanged.
    """
    b, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    ycc = _mix_channels(_TO_YCC * 255.0, F.pad(x, (0, pw, 0, ph), mode="replicate"))
    luma = ycc[:, 0] - 128.0
    chroma = F.avg_pool2d(ycc[:, 1:], 2)  # B x 2 x H/2 x W/2
    dct = _dct_matrix(x.device, x.dtype)
    luma = _blockwise(luma, _quant_tables(quality, _Q_LUMA), dct)
    qc = _quant_tables(quality, _Q_CHROMA)
    cb = _blockwise(chroma[:, 0].contiguous(), qc, dct)
    cr = _blockwise(chroma[:, 1].contiguous(), qc, dct)
    chroma = F.interpolate(torch.stack((cb, cr), dim=1), scale_factor=2.0, mode="bilinear", align_corners=False)
    rgb = _mix_channels(_TO_RGB / 255.0, torch.cat(((luma + 128.0).unsqueeze(1), chroma), dim=1))
    rgb = rgb[:, :, :h, :w].clamp_(0.0, 1.0)
    keep = (quality >= 100).view(b, 1, 1, 1)
    return torch.where(keep, x, rgb)


def expose(radiance: Tensor, cam: CameraParams, generator: torch.Generator | None) -> Tensor:
    """Sensor and image processing at the sensor's resolution: blur, exposure, noise, white balance, gamma, JPEG."""
    if len(cam) != radiance.shape[0]:
        raise ValueError(f"{len(cam)} camera settings for {radiance.shape[0]} images")
    b = radiance.shape[0]
    # in place where possible: each pass over the batch costs as much as the arithmetic in it
    x = _gaussian_blur(radiance, cam.blur).mul_(cam.exposure.view(b, 1, 1, 1))
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    sigma = x.clamp_min(0.0).mul_(cam.shot_noise.view(b, 1, 1, 1)).add_(cam.read_noise.view(b, 1, 1, 1) ** 2)
    x.addcmul_(noise, sigma.sqrt_())
    x.mul_(cam.white_balance.view(b, 3, 1, 1)).clamp_(min=0.0)
    # a soft shoulder before the sRGB-like gamma, as camera tone curves roll off highlights: 1.25 x / (1 + x / 4)
    x = x.mul(5.0).div_(x.add(4.0)).clamp_(0.0, 1.0).pow_(1.0 / 2.2)
    return jpeg(x, cam.jpeg_quality)


def resample(x: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resampling to the strip size (what the runtime's perspective cut does to a webcam image)."""
    if x.shape[-2:] == (height, width):
        return x
    # antialiasing only changes a downsampling (upsampled, it equals plain bilinear and costs 40 % more)
    shrink = x.shape[-2] > height or x.shape[-1] > width
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
