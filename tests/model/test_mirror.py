"""Mirror ensembling (engine.model.mirror): the mirror maps of strips, angles and flows, and the merge."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.model import Decoded, warp
from engine.model.mirror import (
    merge_mirrored,
    merge_mirrored_batch,
    mirror_angles,
    mirror_flow,
    mirror_mean_angles,
    mirror_strips,
    split_halves,
    with_mirrors,
)

H, W = 64, 256


def _smooth_flow(batch: int, seed: int, scale: float = 4.0) -> torch.Tensor:
    """A smooth random backward flow in strip pixels (a coarse field upsampled, like the decoder's)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = (torch.rand(batch, 2, 4, 16, generator=gen) - 0.5) * 2 * scale
    return F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)


def _strips(batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, H, W, generator=gen)


def test_the_mirror_maps_are_involutions_and_change_only_what_mirroring_changes() -> None:
    x, flow = _strips(2, 0), _smooth_flow(2, 1)
    angles = torch.tensor([[0.1, 0.2], [-0.3, -0.05]])
    assert torch.equal(mirror_strips(mirror_strips(x)), x)
    assert torch.equal(mirror_angles(mirror_angles(angles)), angles)
    assert torch.equal(mirror_flow(mirror_flow(flow)), flow)
    assert torch.equal(mirror_angles(angles), torch.tensor([[0.1, -0.2], [-0.3, 0.05]]))
    # The vertical displacement keeps its sign, the horizontal one flips.
    assert torch.equal(mirror_flow(flow)[:, 1], flow[:, 1].flip(-1))
    assert torch.equal(mirror_flow(flow)[:, 0], -flow[:, 0].flip(-1))


def test_a_flow_of_the_mirrored_strip_mapped_back_warps_the_strip_as_the_mirror_was_warped() -> None:
    # What the merge relies on: warping the mirror by f and mirroring back is warping the strip by mirror_flow(f).
    x, flow = _strips(3, 2), _smooth_flow(3, 3)
    of_mirror = mirror_strips(warp(mirror_strips(x), flow, (H, W)))
    direct = warp(x, mirror_flow(flow), (H, W))
    assert torch.allclose(of_mirror, direct, atol=1e-5)
    # and a sign error in either component would show
    wrong = warp(x, flow.flip(-1), (H, W))
    assert (wrong - of_mirror).abs().max() > 0.05


def _decoded(strip: torch.Tensor, seed: int) -> Decoded:
    gen = torch.Generator().manual_seed(seed)
    flow = _smooth_flow(strip.shape[0], seed + 1)
    residual = (torch.rand(strip.shape, generator=gen) - 0.5) * 0.2
    mask = torch.rand(strip.shape[0], 1, H, W, generator=gen)
    out = (warp(strip, flow, (H, W)) + mask * residual).clamp(0.0, 1.0)
    return Decoded(strip_out=out, flow=flow, residual=residual, mask=mask)


def test_merging_a_result_with_its_exact_mirror_gives_the_result_back() -> None:
    strip = _strips(2, 4)
    plain = _decoded(strip, 5)
    mirrored = Decoded(
        strip_out=mirror_strips(plain.strip_out),
        flow=mirror_flow(plain.flow),
        residual=mirror_strips(plain.residual),
        mask=mirror_strips(plain.mask),
    )
    merged = merge_mirrored(strip, plain, mirrored)
    assert torch.allclose(merged.flow, plain.flow, atol=1e-6)
    assert torch.allclose(merged.mask, plain.mask, atol=1e-6)
    assert torch.allclose(merged.residual, plain.residual, atol=1e-4)
    assert torch.allclose(merged.strip_out, plain.strip_out, atol=1e-5)


def test_the_merge_averages_fields_and_corrections_and_redraws_the_strip() -> None:
    strip = _strips(2, 6)
    plain, mirrored = _decoded(strip, 7), _decoded(mirror_strips(strip), 9)
    merged = merge_mirrored_batch(strip, Decoded(*(torch.cat(pair) for pair in zip(plain, mirrored, strict=True))))
    assert torch.allclose(merged.flow, 0.5 * (plain.flow + mirror_flow(mirrored.flow)))
    correction = 0.5 * (plain.mask * plain.residual + mirror_strips(mirrored.mask * mirrored.residual))
    assert torch.allclose(merged.mask * merged.residual, correction, atol=1e-6)
    expected = (warp(strip, merged.flow, (H, W)) + correction).clamp(0.0, 1.0)
    assert torch.allclose(merged.strip_out, expected, atol=1e-6)
    # the merged residual is a weighted mean of the two: bounded by them
    bound = torch.maximum(plain.residual.abs(), mirror_strips(mirrored.residual).abs())
    assert bool((merged.residual.abs() <= bound + 1e-5).all())


def test_batches_with_mirrors_and_their_halves() -> None:
    strip, gaze = _strips(3, 10), torch.tensor([[0.1, 0.2], [0.0, -0.1], [-0.2, 0.3]])
    both, gazes = with_mirrors(strip, gaze)
    assert both.shape == (6, 3, H, W)
    assert gazes.shape == (6, 2)
    first, second = split_halves(both)
    assert torch.equal(first, strip)
    assert torch.equal(second, mirror_strips(strip))
    assert torch.equal(mirror_mean_angles(*split_halves(gazes)), gaze)
    with pytest.raises(ValueError, match="even"):
        split_halves(both[:5])
    with pytest.raises(ValueError, match="B x 2"):
        mirror_angles(torch.zeros(3))
    with pytest.raises(ValueError, match="B x 2 x H x W"):
        mirror_flow(torch.zeros(1, 3, H, W))
