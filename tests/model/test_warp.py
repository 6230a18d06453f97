"""The flow-field warp: identity, integer shifts, and resolution independence of the strip-pixel unit."""

from __future__ import annotations

import pytest
import torch

from engine.model.warp import flow_jacobian_det, upsample_flow, warp


def _image(h: int, w: int) -> torch.Tensor:
    return torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))


def test_zero_flow_is_identity() -> None:
    image = _image(16, 64)
    torch.testing.assert_close(warp(image, torch.zeros(2, 2, 16, 64), (16, 64)), image)


def test_integer_flow_samples_the_shifted_pixel() -> None:
    image = _image(16, 64)
    flow = torch.zeros(2, 2, 16, 64)
    flow[:, 0] = 2.0  # sample two pixels to the right
    flow[:, 1] = -1.0  # and one up
    out = warp(image, flow, (16, 64))
    torch.testing.assert_close(out[..., 1:, :-2], image[..., :-1, 2:])


def test_flow_is_in_strip_pixels_at_any_resolution() -> None:
    # The same region at twice the strip's resolution: one strip pixel is two image pixels.
    image = _image(32, 128)
    flow = torch.zeros(2, 2, 16, 64)
    flow[:, 0] = 1.0
    out = warp(image, upsample_flow(flow, (32, 128)), strip_size=(16, 64))
    torch.testing.assert_close(out[..., :-2], image[..., 2:])


def test_upsample_flow_keeps_values() -> None:
    flow = torch.full((1, 2, 4, 8), 3.5)
    torch.testing.assert_close(upsample_flow(flow, (16, 32)), torch.full((1, 2, 16, 32), 3.5))


def test_warp_rejects_mismatched_flow() -> None:
    image = _image(16, 64)
    with pytest.raises(ValueError, match="flow must be"):
        warp(image, torch.zeros(2, 2, 8, 32), (16, 64))
    with pytest.raises(ValueError, match="flow must be"):
        upsample_flow(torch.zeros(2, 3, 8, 32), (16, 64))
    with pytest.raises(ValueError, match="strip_size"):
        warp(image, torch.zeros(2, 2, 16, 64), (0, 64))


def test_the_jacobian_determinant_reads_translation_squeeze_and_fold() -> None:
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(12.0), indexing="ij")
    shift = torch.stack((torch.full_like(xs, 3.0), torch.full_like(ys, -2.0))).unsqueeze(0)  # -> 1 x 2 x 8 x 12
    assert torch.allclose(flow_jacobian_det(shift), torch.ones(1, 7, 11))
    # sampling x -> x + fx with fx = -0.5 x squeezes the source to half its width: det 0.5
    squeeze = torch.stack((-0.5 * xs, torch.zeros_like(ys))).unsqueeze(0)
    assert torch.allclose(flow_jacobian_det(squeeze), torch.full((1, 7, 11), 0.5))
    # fx = -2 x samples x -> -x: the source mirrored, a fold (det -1); shear in y alone keeps det 1
    fold = torch.stack((-2.0 * xs, torch.zeros_like(ys))).unsqueeze(0)
    assert torch.allclose(flow_jacobian_det(fold), torch.full((1, 7, 11), -1.0))
    shear = torch.stack((0.7 * ys, torch.zeros_like(ys))).unsqueeze(0)
    assert torch.allclose(flow_jacobian_det(shear), torch.ones(1, 7, 11))
    with pytest.raises(ValueError, match="B x 2 x H x W"):
        flow_jacobian_det(torch.zeros(1, 3, 8, 8))
