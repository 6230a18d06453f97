"""What a webcam does to the light: defocus, sensor resolution and noise, exposure, white balance, gamma, JPEG.

The renderer draws at the sensor's (random, lower) resolution; this module turns that radiance into the 8-bit
looking image a webcam delivers and resamples it to the strip size, as the runtime's strip cut does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
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
    """Separable Gaussian blur with a per-image sigma (B x C x H x W), edges replicated.

    On a CPU as seven in-place multiply-adds of shifted views per direction (20 % faster there than the grouped
    convolution, ``bench/synth_blur.py``); elsewhere as one grouped convolution per direction (two kernel
    launches instead of sixteen).
    """
    taps = torch.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, device=x.device, dtype=x.dtype)
    s = sigma.clamp_min(1e-3).view(-1, 1)
    k = torch.exp(-(taps**2) / (2 * s * s))
    k = k / k.sum(dim=1, keepdim=True)  # B x taps
    if x.device.type == "cpu":
        return _shifted_sums(_shifted_sums(x, k, dim=3), k, dim=2)
    return _grouped_conv(x, k)


_BLUR_RADIUS = 3


def _shifted_sums(x: Tensor, k: Tensor, dim: int) -> Tensor:
    """One direction of the blur: ``sum_i k[:, i] * x`` shifted by ``i - radius`` along ``dim`` (2 or 3)."""
    b, n, r = x.shape[0], x.shape[dim], _BLUR_RADIUS
    padded = F.pad(x, (r, r, 0, 0) if dim == 3 else (0, 0, r, r), mode="replicate")
    out = padded.narrow(dim, 0, n) * k[:, 0].view(b, 1, 1, 1)
    for i in range(1, 2 * r + 1):
        out.addcmul_(padded.narrow(dim, i, n), k[:, i].view(b, 1, 1, 1))
    return out


def _grouped_conv(x: Tensor, k: Tensor) -> Tensor:
    """Both directions of the blur as grouped convolutions, one group per image and channel."""
    b, c, h, w = x.shape
    r = _BLUR_RADIUS
    kc = k.repeat_interleave(c, dim=0)  # (B*C) x taps
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), kc.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), kc.view(b * c, 1, -1, 1), groups=b * c)
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

    Pure torch, so it runs wherever the renderer runs; images with quality >= 100 pass through unchanged (and
    cost nothing: only the others are encoded).
    """
    coded = (quality < 100).nonzero(as_tuple=True)[0]
    if coded.numel() == 0:
        return x
    if coded.numel() == len(quality):
        return _jpeg_round_trip(x, quality)
    out = x.clone()
    out[coded] = _jpeg_round_trip(x[coded], quality[coded])
    return out


def _jpeg_round_trip(x: Tensor, quality: Tensor) -> Tensor:
    """:func:`jpeg` for images that all have quality below 100."""
    _, _, h, w = x.shape
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
    return rgb[:, :, :h, :w].clamp_(0.0, 1.0)


_MASK32 = 0xFFFFFFFF


def hash_normal(shape: tuple[int, ...], seeds: Tensor) -> Tensor:
    """Standard normal noise of ``shape`` (B x ...) from one int64 seed per image, without a random generator.

    A counter-based generator: each element's index and its image's seed go through an integer hash (two
    xor-shift-multiply rounds and a final xor-shift, a bijection of 32-bit words computed in int64, where every
    product fits), whose two 16-bit halves make the two uniforms of a Box-Muller transform (tails to 4.7 sigma).
    Being plain tensor arithmetic, ``torch.compile`` fuses it into the kernel that adds the noise: the noise never
    goes through memory, and eager and compiled code draw the same values.
    """
    b = shape[0]
    if seeds.shape != (b,):
        raise ValueError(f"need one seed per image ({b}), got shape {tuple(seeds.shape)}")
    per_image = math.prod(shape[1:])
    index = torch.arange(per_image, device=seeds.device).view(1, per_image)
    x = (index * 0x9E3779B1 + seeds.view(b, 1) * 0x7FEB352D) & _MASK32
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    x = (x >> 16) ^ x
    u1 = ((x >> 16).to(torch.float32) + 0.5) * (1.0 / 65536.0)
    u2 = ((x & 0xFFFF).to(torch.float32) + 0.5) * (1.0 / 65536.0)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)).view(shape)


def draw_sensor_noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """What the sensor noise of images ``shape`` (B x C x H x W) is made from.

    On a CPU, one int64 seed per image for :func:`hash_normal` (fused into the compiled sensor kernel, the noise
    costs a fraction of what ``torch.randn`` takes there: it is single-threaded and its output goes through
    memory). Elsewhere, the normal noise itself from ``torch.randn``, which is fast on a GPU.
    """
    if device.type == "cpu":
        return torch.randint(0, 1 << 31, (shape[0],), generator=generator, device=device)
    return torch.randn(shape, generator=generator, device=device)


def sensor(x: Tensor, exposure: Tensor, shot: Tensor, read: Tensor, white_balance: Tensor, noise: Tensor) -> Tensor:
    """Exposure, shot and read noise, white balance and the tone curve of defocused radiance ``x`` (B x 3 x H x W).

    ``noise`` is what :func:`draw_sensor_noise` returned: per-image seeds (int64, B) or the normal noise itself.
    Out-of-place arithmetic throughout, so that ``torch.compile`` makes it one pass over the images.
    """
    b = x.shape[0]
    normal = hash_normal(tuple(x.shape), noise) if noise.dtype == torch.int64 else noise
    x = x * exposure.view(b, 1, 1, 1)
    sigma = (x.clamp_min(0.0) * shot.view(b, 1, 1, 1) + read.view(b, 1, 1, 1) ** 2).sqrt()
    x = ((x + normal * sigma) * white_balance.view(b, 3, 1, 1)).clamp_min(0.0)
    # a soft shoulder before the sRGB-like gamma, as camera tone curves roll off highlights: 1.25 x / (1 + x / 4)
    out: Tensor = (x * 5.0 / (x + 4.0)).clamp(0.0, 1.0).pow(1.0 / 2.2)
    return out


@functools.cache
def _compiled_sensor() -> Callable[..., Tensor]:
    """:func:`sensor` through ``torch.compile`` with dynamic shapes (made once per process)."""
    compiled: Callable[..., Tensor] = torch.compile(sensor, dynamic=True)
    return compiled


def expose(radiance: Tensor, cam: CameraParams, noise: Tensor, compiled: bool = False) -> Tensor:
    """Sensor and image processing at the sensor's resolution: blur, exposure, noise, white balance, gamma, JPEG.

    ``noise`` comes from :func:`draw_sensor_noise`; ``compiled`` runs the per-pixel sensor step through
    ``torch.compile`` (the first call in a process compiles: 8 s on 2 cores in a one-off timing, session 6).
    """
    if len(cam) != radiance.shape[0]:
        raise ValueError(f"{len(cam)} camera settings for {radiance.shape[0]} images")
    x = _gaussian_blur(radiance, cam.blur)
    run = _compiled_sensor() if compiled else sensor
    x = run(x, cam.exposure, cam.shot_noise, cam.read_noise, cam.white_balance, noise)
    return jpeg(x, cam.jpeg_quality)


def resample(x: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resampling to the strip size (what the runtime's perspective cut does to a webcam image)."""
    if x.shape[-2:] == (height, width):
        return x
    # antialiasing only changes a downsampling (upsampled, it equals plain bilinear and costs 40 % more)
    shrink = x.shape[-2] > height or x.shape[-1] > width
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
