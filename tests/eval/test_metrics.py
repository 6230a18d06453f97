"""Evaluation metrics: PSNR and SSIM on known cases, and a full evaluation of an untrained tiny model."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

import pytest
import torch

from engine.eval.metrics import (
    EvalConfig,
    RedirectionMetrics,
    SourceRedirection,
    evaluate_redirector,
    markdown_table,
    psnr,
    ssim,
)
from engine.model import Redirector
from engine.model.mirror import merge_mirrored_batch, mirror_angles, mirror_strips
from tests.model.helpers import random_heads_redirector
from tests.train.helpers import TINY_MODEL, TINY_SYNTH, tiny_estimator


def _images(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 32, 48, generator=gen), 5, 1, 2)
    return smooth.clamp(0.0, 1.0)


def test_identical_images_have_infinite_psnr_and_unit_ssim() -> None:
    x = _images()
    assert torch.isinf(psnr(x, x)).all()
    torch.testing.assert_close(ssim(x, x), torch.ones(2))


def test_noise_lowers_psnr_and_ssim() -> None:
    x = _images()
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=gen)
    little, more = (x + 0.02 * noise).clamp(0, 1), (x + 0.1 * noise).clamp(0, 1)
    assert (psnr(x, little) > psnr(x, more)).all()
    assert (ssim(x, little) > ssim(x, more)).all()
    assert (ssim(x, more) < 0.9).all()
    torch.testing.assert_close(psnr(torch.zeros(1, 1, 16, 16), torch.full((1, 1, 16, 16), 0.1)), torch.tensor([20.0]))


def test_ssim_agrees_with_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    x = _images()
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    ours = float(ssim(x[:1], y[:1]))
    theirs = metrics.structural_similarity(
        x[0].permute(1, 2, 0).numpy(),
        y[0].permute(1, 2, 0).numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2,
    )
    # scikit-image pads and crops the borders differently; the interiors agree
    assert ours == pytest.approx(theirs, abs=0.02)


def test_evaluation_of_an_untrained_model_returns_finite_metrics() -> None:
    torch.manual_seed(0)
    model = Redirector(TINY_MODEL)
    metrics = evaluate_redirector(model, tiny_estimator("b"), TINY_SYNTH, EvalConfig(pairs=5, batch_size=3))
    assert metrics.pairs == 5
    values = metrics.to_dict()
    assert set(values) == {f.name for f in fields(RedirectionMetrics)}
    assert all(math.isfinite(v) for v in values.values())
    assert 0.0 < metrics.ssim <= 1.0
    # The untrained decoder starts at the identity (zero flow and residual), so redirecting one factor changes
    # nothing the judge can see: both disentanglement errors are about zero.
    assert metrics.gaze_to_head_deg < 0.1
    assert metrics.head_to_gaze_deg < 0.1
    assert json.loads(metrics.to_json()) == values
    table = markdown_table({"tiny": metrics, "seeds": [metrics, metrics]})
    assert table.count("\n") == 4
    assert "| tiny |" in table
    assert "± 0.00" in table


def test_open_eye_figures_leave_out_closed_eyes() -> None:
    torch.manual_seed(0)
    model, judge = Redirector(TINY_MODEL), tiny_estimator("b")
    config = EvalConfig(pairs=4, batch_size=2)
    # every eye open: the open-eye figures are the all-pair figures
    opened = evaluate_redirector(model, judge, replace(TINY_SYNTH, closed_fraction=0.0, blink_fraction=0.0), config)
    assert opened.open_pairs == 4
    assert opened.gaze_redirection_open_deg == pytest.approx(opened.gaze_redirection_deg)
    assert opened.judge_gaze_floor_open_deg == pytest.approx(opened.judge_gaze_floor_deg)
    # every eye closed: no open pair to average over, and the all-pair figures are still reported
    closed = evaluate_redirector(model, judge, replace(TINY_SYNTH, closed_fraction=1.0, blink_fraction=0.0), config)
    assert closed.open_pairs == 0
    assert math.isnan(closed.gaze_redirection_open_deg)
    assert math.isnan(closed.judge_gaze_floor_open_deg)
    assert math.isfinite(closed.gaze_redirection_deg)
    assert "nan" in markdown_table({"closed": closed})


def test_the_mirror_ensemble_in_evaluation_is_mirror_symmetric() -> None:
    model = random_heads_redirector(TINY_MODEL)
    gen = torch.Generator().manual_seed(1)
    strip = torch.rand(3, 3, TINY_MODEL.height, TINY_MODEL.width, generator=gen)
    gaze, head = (torch.rand(3, 2, generator=gen) - 0.5) * 0.6, (torch.rand(3, 2, generator=gen) - 0.5) * 0.4
    with torch.no_grad():
        out = SourceRedirection(model, strip, mirror=True).to(gaze, head)
        of_mirror = SourceRedirection(model, mirror_strips(strip), mirror=True).to(mirror_angles(gaze), None)
        plain = SourceRedirection(model, strip).to(gaze, head)
        # the merge of the plain result and the redirected mirror image, spelled out
        both = torch.cat((strip, mirror_strips(strip)))
        factors = model.encode(both)
        targets = torch.cat((gaze, mirror_angles(gaze))), torch.cat((head, mirror_angles(head)))
        decoded = model.decode(model.redirect(factors, *targets, calibrated=True), both)
    assert torch.allclose(out, merge_mirrored_batch(strip, decoded).strip_out)
    assert (out - plain).abs().max() > 1e-2, "the ensemble should differ from a single pass"
    # A target head of None keeps each strip's own head, so only the gaze-only redirection is symmetric to compare:
    gaze_only = SourceRedirection(model, strip, mirror=True).to(gaze, None)
    assert torch.allclose(mirror_strips(of_mirror), gaze_only, atol=1e-4)
    assert out.shape == strip.shape


def test_evaluation_of_the_mirror_ensemble() -> None:
    model, judge = random_heads_redirector(TINY_MODEL), tiny_estimator("b")
    plain = evaluate_redirector(model, judge, TINY_SYNTH, EvalConfig(pairs=4, batch_size=2))
    mirrored = evaluate_redirector(model, judge, TINY_SYNTH, EvalConfig(pairs=4, batch_size=2, mirror=True))
    assert all(math.isfinite(v) for v in mirrored.to_dict().values())
    # The judge's floors read the true renders only, so the ensemble leaves them as they are; the outputs change.
    assert mirrored.judge_gaze_floor_deg == pytest.approx(plain.judge_gaze_floor_deg)
    assert mirrored.judge_head_floor_deg == pytest.approx(plain.judge_head_floor_deg)
    assert mirrored.psnr_db != pytest.approx(plain.psnr_db)
