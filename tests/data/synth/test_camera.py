"""Webcam effects: JPEG round trip, blur, and the neutral camera that adds nothing."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from engine.data.synth import camera
from engine.data.synth.camera import CameraParams, draw_sensor_noise, expose, hash_normal, jpeg, resample, sensor
from engine.data.synth.sampler import neutral_camera


def _photo() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 8, 32, generator=gen), size=(64, 256), mode="bicubic")
    return smooth.clamp(0, 1)


def test_quality_100_is_lossless_and_lower_quality_loses_more() -> None:
    x = _photo()
    assert torch.equal(jpeg(x, torch.tensor([100.0, 100.0])), x)
    err = [float((jpeg(x, torch.tensor([q, q])) - x).abs().mean()) for q in (90.0, 50.0, 15.0)]
    assert 0 < err[0] < err[1] < err[2]
    assert err[0] < 0.02


def test_our_jpeg_matches_a_real_encoder_closely() -> None:
    img = data.astronaut()[60:188, 120:376]  # a real face photo, 128 x 256
    x = torch.from_numpy(img).float().permute(2, 0, 1)[None] / 255
    for quality in (30, 60, 90):
        ours = jpeg(x, torch.tensor([float(quality)]))[0]
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
        real = torch.from_numpy(np.ascontiguousarray(decoded)).float().permute(2, 0, 1) / 255
        # the same artefacts as the real codec: far closer to its output than either is to the input
        assert float((ours - real).abs().mean()) < 0.4 * float((real - x[0]).abs().mean())


def test_neutral_camera_only_applies_the_tone_curve() -> None:
    x = _photo() * 0.5
    out = expose(x, neutral_camera(2, "cpu"), draw_sensor_noise(tuple(x.shape), None, x.device))
    curve = x / (1.0 + 0.25 * x)
    torch.testing.assert_close(out, (curve * 1.25).clamp(0, 1) ** (1 / 2.2), atol=1e-5, rtol=0)


def test_hash_noise_is_standard_normal_and_independent() -> None:
    noise = hash_normal((64, 3, 40, 160), torch.arange(64))
    assert abs(float(noise.mean())) < 0.01
    assert abs(float(noise.std()) - 1.0) < 0.01
    kurtosis = float(((noise - noise.mean()) ** 4).mean() / noise.var() ** 2)
    assert abs(kurtosis - 3.0) < 0.05  # Gaussian tails, not a uniform's (1.8) or a sum of a few uniforms'
    # neighbouring pixels, channels and images do not correlate
    for a, b in ((noise[..., 1:], noise[..., :-1]), (noise[:, 1], noise[:, 0]), (noise[1], noise[0])):
        assert abs(float(torch.corrcoef(torch.stack((a.flatten(), b.flatten())))[0, 1])) < 0.02
    # the same seed gives the same noise, another seed other noise
    again = hash_normal((2, 3, 40, 160), torch.tensor([5, 6]))
    assert torch.equal(again[0], noise[5])
    assert not torch.allclose(again[1], noise[5])
    with pytest.raises(ValueError, match="one seed per image"):
        hash_normal((3, 3, 8, 8), torch.arange(2))


def test_the_compiled_sensor_computes_what_the_eager_one_does() -> None:
    x = _photo() * 0.4
    cam = neutral_camera(2, "cpu")
    noisy = replace(cam, read_noise=torch.tensor([0.02, 0.01]), shot_noise=torch.tensor([0.01, 0.0]))
    noise = draw_sensor_noise(tuple(x.shape), torch.Generator().manual_seed(3), x.device)
    args = (noisy.exposure, noisy.shot_noise, noisy.read_noise, noisy.white_balance, noise)
    eager = sensor(x, *args)
    torch.testing.assert_close(torch.compile(sensor, dynamic=True)(x, *args), eager, atol=1e-5, rtol=0)
    # the noise is there, with the read noise's strength (to first order, after the tone curve's slope)
    clean = sensor(x, *args[:2], torch.zeros(2), *args[3:])
    assert 0.005 < float((eager - clean)[1].std()) < 0.05


def test_only_images_below_quality_100_are_compressed() -> None:
    x = _photo()
    mixed = jpeg(x, torch.tensor([100.0, 40.0]))
    assert torch.equal(mixed[0], x[0])
    torch.testing.assert_close(mixed[1], jpeg(x[1:], torch.tensor([40.0]))[0])


def test_the_cpu_blur_equals_the_grouped_convolution_used_elsewhere() -> None:
    x = _photo()
    sigma = torch.tensor([0.4, 1.1])
    shifted = camera._gaussian_blur(x, sigma)  # on a CPU: shifted sums
    r = camera._BLUR_RADIUS
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma.view(2, 1) ** 2))
    torch.testing.assert_close(shifted, camera._grouped_conv(x, k / k.sum(1, keepdim=True)), atol=1e-6, rtol=0)
    # a wider sigma blurs more; any blur changes the image
    assert float((shifted[1] - x[1]).abs().mean()) > float((shifted[0] - x[0]).abs().mean()) > 0


def _webcam(n: int) -> CameraParams:
    gen = torch.Generator().manual_seed(5)
    return CameraParams(
        exposure=0.8 + 0.4 * torch.rand(n, generator=gen),
        white_balance=1.0 + 0.08 * (torch.rand(n, 3, generator=gen) - 0.5),
        blur=1.1 * torch.rand(n, generator=gen),
        read_noise=torch.full((n,), 0.01),
        shot_noise=torch.full((n,), 0.005),
        jpeg_quality=torch.tensor([100.0, 40.0, 85.0, 60.0, 95.0, 30.0])[:n],
    )


@pytest.mark.parametrize(("height", "width"), [(26, 102), (32, 128)])  # padded to 16-pixel blocks, and not
def test_the_compiled_camera_develops_what_the_eager_one_does(height: int, width: int) -> None:
    """Blur, sensor and JPEG compiled (kernels specialised to the image size) against the eager code."""
    gen = torch.Generator().manual_seed(height)
    radiance = torch.nn.functional.interpolate(
        torch.rand(6, 3, 6, 24, generator=gen), size=(height, width), mode="bicubic"
    ).clamp_min(0.0)
    cam = _webcam(6)
    noise = draw_sensor_noise(tuple(radiance.shape), gen, radiance.device)
    for rows in (slice(0, 6), slice(1, 4)):  # a second batch size reuses the kernels of this image size
        sub = CameraParams(**{k: v[rows] for k, v in vars(cam).items()})
        eager = expose(radiance[rows], sub, noise[rows])
        fast = expose(radiance[rows], sub, noise[rows], compiled=True)
        diff = (fast - eager).abs()
        # fused maths rounds differently, and a DCT coefficient on a rounding boundary may round the other way,
        # which moves its 8 x 8 block by one quantisation step
        assert float((diff > 1e-3).float().mean()) < 0.01
        assert float(diff.mean()) < 1e-4
        # without compression only the fused sensor maths differs
        raw = sub.jpeg_quality >= 100
        torch.testing.assert_close(fast[raw], eager[raw], atol=1e-5, rtol=0)


def test_chroma_upsampling_as_shifted_views_equals_interpolate() -> None:
    c = torch.rand(2, 2, 5, 9)
    up = camera._upsample2(camera._upsample2(c, 3), 2)
    ref = torch.nn.functional.interpolate(c, scale_factor=2.0, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up, ref, atol=1e-6, rtol=0)


def test_resampling_into_a_given_tensor_writes_what_it_returns_otherwise() -> None:
    x = _photo()[:, :, :26, :102]
    for size in ((64, 256), (26, 102), (13, 51)):  # up, same size, down (antialiased)
        out = torch.empty(2, 3, *size)
        assert resample(x, *size, out=out) is out
        torch.testing.assert_close(out, resample(x, *size), atol=0, rtol=0)
