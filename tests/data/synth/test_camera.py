"""Webcam effects: JPEG round trip, blur, and the neutral camera that adds nothing."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from skimage import data

from engine.data.synth.camera import expose, jpeg
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
    out = expose(x, neutral_camera(2, "cpu"), None)
    curve = x / (1.0 + 0.25 * x)
    torch.testing.assert_close(out, (curve * 1.25).clamp(0, 1) ** (1 / 2.2), atol=1e-5, rtol=0)
