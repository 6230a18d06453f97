"""Losses: values on known cases, determinism, and the structured-gaze loss's push and pull."""

from __future__ import annotations

import math

import pytest
import torch

from engine.model.ght import ght_interpolate
from engine.model.rotation import redirect_embedding
from engine.train.losses import (
    StructuredGazeLoss,
    angular_loss,
    embedding_consistency_loss,
    eye_cells,
    fold_loss,
    ght_consistency_loss,
    pseudo_label_loss,
    pupil_flow_loss,
    reconstruction_l1,
    sample_beta22,
    structured_gaze_loss,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_reconstruction_l1_plain_and_weighted() -> None:
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full((2, 3, 4, 4), 0.5)
    torch.testing.assert_close(reconstruction_l1(a, b), torch.tensor(0.5))
    b[..., :2] = 0.0
    weight = torch.zeros(2, 1, 4, 4)
    weight[..., 2:] = 1.0  # only where they differ
    torch.testing.assert_close(reconstruction_l1(a, b, weight), torch.tensor(0.5))
    with pytest.raises(ValueError, match="differ in shape"):
        reconstruction_l1(a, b[:1])
    with pytest.raises(ValueError, match="weight"):
        reconstruction_l1(a, b, weight[:, :, :2])


def test_angular_loss_known_values() -> None:
    g = torch.tensor([[0.1, -0.2], [0.3, 0.4]])
    assert angular_loss(g, g) < 1e-2  # the epsilon clamp leaves ~1.4e-3 rad
    quarter = torch.tensor([[0.0, math.pi / 2]])
    torch.testing.assert_close(angular_loss(quarter, torch.zeros(1, 2)), torch.tensor(math.pi / 2))
    both = pseudo_label_loss(quarter, torch.zeros(1, 2), torch.zeros(1, 2), quarter)
    torch.testing.assert_close(both, torch.tensor(math.pi))


def test_embedding_consistency_is_zero_for_rotated_copies() -> None:
    gen = _gen()
    z_a = torch.randn(4, 3, 16, generator=gen)
    g_a, g_b = torch.rand(4, 2, generator=gen) - 0.5, torch.rand(4, 2, generator=gen) - 0.5
    z_b = redirect_embedding(z_a, g_a, g_b)
    assert embedding_consistency_loss(z_a, g_a, z_b, g_b) < 1e-5
    assert embedding_consistency_loss(z_a, g_a, torch.randn(4, 3, 16, generator=gen), g_b) > 0.5


def test_ght_consistency_loss_at_alpha_one_is_zero() -> None:
    gen = _gen(1)
    z_s, z_t = torch.randn(4, 3, 16, generator=gen), torch.randn(4, 3, 16, generator=gen)
    g_s, g_t = torch.rand(4, 2, generator=gen) - 0.5, torch.rand(4, 2, generator=gen) - 0.5
    z_tr, g_tr = ght_interpolate(z_s, z_t, g_s, g_t, 1.0)
    assert ght_consistency_loss(z_s, g_s, z_tr, g_tr, g_t) < 1e-5


def test_beta22_is_deterministic_with_the_right_moments() -> None:
    a, b = sample_beta22((20_000,), _gen(3)), sample_beta22((20_000,), _gen(3))
    assert torch.equal(a, b)
    assert a.min() >= 0.0
    assert a.max() <= 1.0
    assert abs(a.mean().item() - 0.5) < 0.01
    assert abs(a.var().item() - 0.05) < 0.005  # Beta(2, 2): variance 1/20


def _factors(aligned: bool, batch: int = 8, f: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = _gen(4)
    basis = torch.linalg.qr(torch.randn(3 * f, 3 * f, generator=gen))[0]  # orthonormal columns
    if aligned:
        gaze = basis[:, 0].expand(batch, -1) * torch.rand(batch, 1, generator=gen).add(0.5)
    else:
        gaze = torch.randn(batch, 3 * f, generator=gen)
    # Head and appearance live in a subspace orthogonal to the aligned gaze direction.
    head = torch.randn(batch, 3 * f - 1, generator=gen) @ basis[:, 1:].T
    appearance = torch.randn(batch, 3 * f - 1, generator=gen) @ basis[:, 1:].T
    return gaze.reshape(batch, 3, f), head.reshape(batch, 3, f), appearance


def test_sg_loss_is_lower_when_positives_align() -> None:
    identity = torch.nn.Identity()
    aligned = structured_gaze_loss(*_factors(aligned=True), identity, _gen(5))
    scattered = structured_gaze_loss(*_factors(aligned=False), identity, _gen(5))
    assert aligned < 1e-3
    assert scattered > aligned + 0.1


def test_sg_loss_decreases_as_the_gaze_embeddings_gather() -> None:
    identity = torch.nn.Identity()
    g_a, head, app = _factors(aligned=True)
    g_s, _, _ = _factors(aligned=False)
    values = [
        structured_gaze_loss((1 - t) * g_s + t * g_a, head, app, identity, _gen(6)).item() for t in (0.0, 0.5, 0.9)
    ]
    assert values[0] > values[1] > values[2]


def test_sg_loss_is_deterministic_and_has_finite_gradients() -> None:
    gaze, head, app = _factors(aligned=True)
    gaze = gaze.clone().requires_grad_(True)
    loss_a = structured_gaze_loss(gaze, head, app, torch.nn.Identity(), _gen(7))
    loss_b = structured_gaze_loss(gaze, head, app, torch.nn.Identity(), _gen(7))
    assert torch.equal(loss_a, loss_b)
    (grad,) = torch.autograd.grad(loss_a, gaze)
    assert torch.isfinite(grad).all()


def test_sg_module_projects_appearance_and_checks_shapes() -> None:
    gaze, head, _ = _factors(aligned=False)
    loss_fn = StructuredGazeLoss(appearance_dim=10, embedding_dim=16)
    appearance = torch.randn(8, 10, generator=_gen(8))
    loss = loss_fn(gaze, head, appearance, _gen(9))
    (grad,) = torch.autograd.grad(loss, loss_fn.projection.weight)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 2"):
        loss_fn(gaze[:1], head[:1], appearance[:1], _gen(9))
    with pytest.raises(ValueError, match="projection"):
        structured_gaze_loss(gaze, head, appearance, torch.nn.Identity(), _gen(9))


def test_losses_are_differentiable_scalars() -> None:
    gen = _gen(10)
    g = (torch.rand(4, 2, generator=gen) - 0.5).requires_grad_(True)
    loss = angular_loss(g, torch.zeros(4, 2))
    (grad,) = torch.autograd.grad(loss, g)
    assert loss.ndim == 0
    assert torch.isfinite(grad).all()


def test_the_pupil_loss_is_zero_for_the_right_flow_and_counts_pixels_otherwise() -> None:
    target = torch.tensor([[[10.5, 5.5], [30.5, 6.5]], [[12.0, 4.0], [28.0, 4.0]]])
    shift = torch.tensor([3.0, -1.0])
    flow = shift.view(1, 2, 1, 1).expand(2, 2, 16, 48).clone()  # every output pixel samples 3 px right, 1 up
    both = torch.tensor([True, True])
    assert float(pupil_flow_loss(flow, target + shift, target, both)) == pytest.approx(0.0, abs=1e-6)
    # 4 px off in x on every eye: Huber(4) = 3.5 px
    assert float(pupil_flow_loss(flow, target + shift + torch.tensor([4.0, 0.0]), target, both)) == pytest.approx(3.5)
    # rows that are not valid do not count, and with none valid the loss is 0
    wrong = (target + shift).clone()
    wrong[1] += 10.0
    assert float(pupil_flow_loss(flow, wrong, target, torch.tensor([True, False]))) == pytest.approx(0.0, abs=1e-6)
    assert float(pupil_flow_loss(flow, wrong, target, torch.tensor([False, False]))) == 0.0
    with pytest.raises(ValueError, match="bool mask"):
        pupil_flow_loss(flow, target, target, torch.tensor([1, 1]))


def test_the_fold_loss_ignores_smooth_warps_and_grows_with_a_fold() -> None:
    xs = torch.arange(32.0).view(1, 1, 32).expand(2, 16, 32)
    zeros = torch.zeros_like(xs)
    rigid = torch.stack((torch.full_like(xs, 5.0), zeros), dim=1)  # -> 2 x 2 x 16 x 32
    assert float(fold_loss(rigid)) == 0.0
    # a squeeze to half the area is allowed; to a tenth is not (0.2 - 0.1 on every pixel square)
    assert float(fold_loss(torch.stack((-0.5 * xs, zeros), dim=1))) == 0.0
    assert float(fold_loss(torch.stack((-0.9 * xs, zeros), dim=1))) == pytest.approx(0.1, abs=1e-5)
    # a bump that moves columns 10-20 back 6 px folds where it rises and fell too steeply: the loss sees it, and
    # its gradient flattens the bump (a descent step lowers it)
    bump = (6.0 * torch.exp(-(((xs - 15.0) / 2.0) ** 2))).requires_grad_(True)
    loss = fold_loss(torch.stack((bump, zeros), dim=1))
    assert float(loss.detach()) > 0.0
    (grad,) = torch.autograd.grad(loss, bump)
    after = fold_loss(torch.stack((bump.detach() - 0.5 * grad / grad.abs().max(), zeros), dim=1))
    assert float(after) < float(loss.detach())
    with pytest.raises(ValueError, match="positive"):
        fold_loss(rigid, margin=0.0)


def test_the_fold_loss_weighs_each_pixel_square() -> None:
    xs = torch.arange(32.0).view(1, 1, 32).expand(2, 16, 32)
    zeros = torch.zeros_like(xs)
    squeeze = torch.stack((-0.9 * xs, zeros), dim=1)  # 0.1 of hinge on every pixel square
    ones = torch.ones(2, 15, 31)
    assert float(fold_loss(squeeze, weight=ones)) == pytest.approx(float(fold_loss(squeeze)), rel=1e-6)
    half = ones.clone()
    half[:, :, 16:] = 0.0  # only the left 16 of 31 columns count
    assert float(fold_loss(squeeze, weight=half)) == pytest.approx(0.1 * 16 / 31, rel=1e-5)
    # a fold where the weight is 0 does not count
    bump = 6.0 * torch.exp(-(((xs - 24.0) / 2.0) ** 2))
    assert float(fold_loss(torch.stack((bump, zeros), dim=1))) > 0.0
    assert float(fold_loss(torch.stack((bump, zeros), dim=1), weight=half)) == 0.0
    with pytest.raises(ValueError, match="weight must be"):
        fold_loss(squeeze, weight=torch.ones(2, 16, 32))


def test_eye_cells_cover_the_eyeball_and_reach_beyond_it() -> None:
    mask = torch.zeros(1, 1, 24, 48)
    mask[0, 0, 10:12, 20:22] = 1.0  # a 2 x 2 eyeball
    exact = eye_cells(mask, reach_px=0)
    assert exact.shape == (1, 23, 47)
    assert float(exact[0, 10, 20]) == 1.0  # the square of the four eyeball pixels
    assert float(exact[0, 10, 21]) == 0.5  # half of its pixels
    assert float(exact[0, 9, 19]) == 0.25
    assert float(exact.sum()) == pytest.approx(4.0)  # each pixel is shared by four squares
    near = eye_cells(mask, reach_px=4)
    assert float(near[0, 10, 24]) == 1.0  # 4 squares right of the full one
    assert float(near[0, 10, 25]) == 0.5  # 4 right of the half one
    assert float(near[0, 10, 26]) == 0.0
    assert float(near[0, 5, 20]) == 0.5  # above: 4 rows over the half square
    assert float(near[0, 4, 20]) == 0.0
    assert float(near.min()) == 0.0
    assert float(near.max()) == 1.0
    with pytest.raises(ValueError, match="mask must be"):
        eye_cells(mask[:, 0])
    with pytest.raises(ValueError, match="reach_px"):
        eye_cells(mask, reach_px=-1)
