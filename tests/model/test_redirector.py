"""The redirector network: shapes, bounds, the strength dial, guards and size."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import nn

from engine.model import Factors, Redirector, RedirectorConfig
from tests.model.helpers import random_heads_redirector

H, W = 64, 256


@pytest.fixture(scope="module")
def model() -> Redirector:
    """A default-size redirector with randomised weights (the output heads start at zero)."""
    # Large head weights saturate the tanh bounds, so the bound checks below are not vacuous.
    return random_heads_redirector(std=0.5)


def _inputs(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    strip = torch.rand(batch, 3, H, W, generator=gen)
    target = (torch.rand(batch, 2, generator=gen) - 0.5) * 0.8
    return strip, target


def test_output_shapes_and_ranges(model: Redirector) -> None:
    strip, target = _inputs(3)
    with torch.no_grad():
        out = model(strip, target, torch.ones(3))
    cfg = model.config
    assert out.strip_out.shape == (3, 3, H, W)
    assert out.flow.shape == (3, 2, H, W)
    assert out.residual.shape == (3, 3, H, W)
    assert out.mask.shape == (3, 1, H, W)
    assert out.gaze_estimate.shape == out.head_estimate.shape == (3, 2)
    assert out.strip_out.min() >= 0.0
    assert out.strip_out.max() <= 1.0
    assert out.mask.min() >= 0.0
    assert out.mask.max() <= 1.0
    assert out.residual.abs().max() <= cfg.max_residual
    for estimate in (out.gaze_estimate, out.head_estimate):
        assert estimate.abs().max() <= 0.5 * math.pi


def test_flow_is_bounded_and_used(model: Redirector) -> None:
    strip, target = _inputs(2)
    with torch.no_grad():
        out = model(strip, target, torch.ones(2))
    assert out.flow.abs().max() <= model.config.max_flow_px
    assert out.flow.abs().max() > 0.5  # the saturated heads really move pixels


def test_untrained_model_returns_its_input() -> None:
    # Zero-initialised heads: no flow, no residual, so the output is the input (up to resampling rounding).
    net = Redirector(RedirectorConfig()).eval()
    strip, target = _inputs(2)
    with torch.no_grad():
        out = net(strip, target, torch.ones(2))
    torch.testing.assert_close(out.strip_out, strip, atol=1e-5, rtol=0.0)


def test_strength_zero_leaves_the_latent_unchanged(model: Redirector) -> None:
    strip, target = _inputs(2)
    seen: list[Factors] = []

    def spy(_module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0])

    handle = model.decoder.register_forward_pre_hook(spy)
    try:
        with torch.no_grad():
            model(strip, target, torch.zeros(2))
            encoded = model.encode(strip)
    finally:
        handle.remove()
    assert torch.equal(seen[0].gaze_emb, encoded.gaze_emb)
    assert torch.equal(seen[0].head_emb, encoded.head_emb)
    assert torch.equal(seen[0].appearance, encoded.appearance)


def test_strength_zero_reproduces_the_reconstruction_exactly(model: Redirector) -> None:
    strip, target = _inputs(2)
    with torch.no_grad():
        recon = model.reconstruct(strip)
        out_a = model(strip, target, torch.zeros(2))
        out_b = model(strip, -target, torch.zeros(2))
    assert torch.equal(out_a.strip_out, recon.strip_out)
    assert torch.equal(out_b.strip_out, recon.strip_out)
    assert torch.equal(out_a.flow, recon.flow)


def test_strength_acts_per_sample(model: Redirector) -> None:
    strip, target = _inputs(2)
    with torch.no_grad():
        recon = model.reconstruct(strip)
        out = model(strip, target, torch.tensor([0.0, 1.0]))
    assert torch.equal(out.strip_out[0], recon.strip_out[0])
    assert not torch.allclose(out.strip_out[1], recon.strip_out[1])


def test_redirect_rotates_embeddings_and_keeps_the_rest(model: Redirector) -> None:
    strip, target = _inputs(2)
    with torch.no_grad():
        factors = model.encode(strip)
        moved = model.redirect(factors, target, factors.head_pl)
    assert moved.gaze_emb.shape == (2, 3, model.config.embedding_dim)
    assert torch.equal(moved.appearance, factors.appearance)
    assert torch.equal(moved.skip, factors.skip)
    assert torch.equal(moved.gaze_pl, target)
    torch.testing.assert_close(moved.gaze_emb.norm(dim=1), factors.gaze_emb.norm(dim=1))
    torch.testing.assert_close(moved.head_emb, factors.head_emb, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("strip_shape", "target_shape", "strength_shape", "message"),
    [
        ((2, 3, 32, 256), (2, 2), (2,), "strip must be"),
        ((2, 1, 64, 256), (2, 2), (2,), "strip must be"),
        ((2, 3, 64, 256), (3, 2), (2,), "target_gaze"),
        ((2, 3, 64, 256), (2, 3), (2,), "target_gaze"),
        ((2, 3, 64, 256), (2, 2), (2, 1), "strength"),
    ],
)
def test_forward_rejects_wrong_shapes(
    model: Redirector,
    strip_shape: tuple[int, ...],
    target_shape: tuple[int, ...],
    strength_shape: tuple[int, ...],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(strip_shape), torch.zeros(target_shape), torch.zeros(strength_shape))


def test_guards_reject_integer_strips_and_mismatched_factors(model: Redirector) -> None:
    with pytest.raises(ValueError, match="floating-point"):
        model.encode(torch.zeros(1, 3, H, W, dtype=torch.uint8))
    strip, _ = _inputs(2)
    with torch.no_grad():
        factors = model.encode(strip)
    with pytest.raises(ValueError, match=r"factors\.appearance"):
        model.decode(factors, strip[:1])


def test_config_rejects_sizes_the_encoder_cannot_halve() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        RedirectorConfig(height=72)
    with pytest.raises(ValueError, match="positive"):
        RedirectorConfig(embedding_dim=0)


def test_size_budget() -> None:
    n = sum(p.numel() for p in Redirector(RedirectorConfig()).parameters())
    assert 1_000_000 <= n <= 3_000_000
    assert n * 4 < 25 * 1024 * 1024  # fp32 checkpoint


def test_the_move_gain_scales_the_requested_move_at_inference_only(model: Redirector) -> None:
    model = copy.deepcopy(model)  # the fixture is shared: leave its gain alone
    strip, target = _inputs(2)
    gain = torch.tensor([1.1, 0.9, 1.2, 1.0])
    with torch.no_grad():
        factors = model.encode(strip)
        plain = model.redirect(factors, target, factors.head_pl)
        model.get_buffer("move_gain").copy_(gain)
        aimed = model.aim(factors.gaze_pl, target, "gaze")
        torch.testing.assert_close(aimed, factors.gaze_pl + gain[:2] * (target - factors.gaze_pl))
        # training (calibrated=False) rotates to the target as asked, whatever the gain
        assert torch.equal(model.redirect(factors, target, factors.head_pl).gaze_pl, plain.gaze_pl)
        calibrated = model.redirect(factors, target, factors.head_pl, calibrated=True)
        torch.testing.assert_close(calibrated.gaze_pl, aimed)
        torch.testing.assert_close(calibrated.head_pl, factors.head_pl)  # no head move asked: none made
        # inference goes through the gain; strength 0 still reproduces the input exactly
        out = model(strip, target, torch.tensor([1.0, 0.0]))
        recon = model.reconstruct(strip)
        expected = model.decode(calibrated, strip).strip_out
    # (up to the head embedding's R(h) R(h)^T, the identity only up to rounding, which forward skips)
    torch.testing.assert_close(out.strip_out[0], expected[0], atol=2e-4, rtol=0.0)
    assert torch.equal(out.strip_out[1], recon.strip_out[1])
    assert (out.strip_out[0] - model.decode(plain, strip).strip_out[0]).abs().max() > 1e-2


def test_a_checkpoint_without_a_move_gain_loads_with_gain_one(model: Redirector) -> None:
    state = model.state_dict()
    del state["move_gain"]
    other = Redirector(model.config)
    other.get_buffer("move_gain").fill_(2.0)
    other.load_state_dict(state)  # strict: the hook supplies the missing key
    assert torch.equal(other.get_buffer("move_gain"), torch.ones(4))
