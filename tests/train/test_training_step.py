"""A few optimiser steps on a tiny fixed batch must lower the reconstruction loss (CPU, small model)."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from engine.model import Redirector
from engine.train.losses import reconstruction_l1
from tests.train.helpers import TINY_MODEL

TINY = replace(TINY_MODEL, width=64)


def _blobs(centres_x: torch.Tensor) -> torch.Tensor:
    """Dark discs ("irises") on a light background at the given x positions (B), 3 x 32 x 64."""
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(64.0), indexing="ij")
    r2 = (xs - centres_x.view(-1, 1, 1)) ** 2 + (ys - 16.0) ** 2
    image = 0.9 - 0.7 * torch.sigmoid(36.0 - r2)
    return image.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def test_optimiser_steps_reduce_the_reconstruction_loss() -> None:
    torch.manual_seed(0)
    model = Redirector(TINY)
    source = F.avg_pool2d(_blobs(torch.tensor([28.0, 30.0, 34.0, 36.0])), 3, 1, 1)
    target = F.avg_pool2d(_blobs(torch.tensor([31.0, 33.0, 31.0, 33.0])), 3, 1, 1)
    target_gaze = torch.tensor([[0.0, -0.1], [0.0, -0.1], [0.0, 0.1], [0.0, 0.1]])
    strength = torch.ones(4)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = model(source, target_gaze, strength)
        loss = reconstruction_l1(out.strip_out, target)
        optimiser.zero_grad()
        torch.autograd.backward(loss)
        optimiser.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.8 * losses[0]
