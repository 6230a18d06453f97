"""Shared test helpers for the network."""

from __future__ import annotations

import torch

from engine.model import Redirector, RedirectorConfig


def random_heads_redirector(config: RedirectorConfig | None = None, std: float = 0.3, seed: int = 0) -> Redirector:
    """A redirector (in eval mode) whose decoder output heads, which start at zero, are drawn from N(0, ``std``), so
    that its flows and residuals are far from zero and asymmetric."""
    torch.manual_seed(seed)
    net = Redirector(config or RedirectorConfig())
    with torch.no_grad():
        for head in (net.decoder.flow_head, net.decoder.full_head):
            for param in head.parameters():
                param.normal_(0.0, std)
    return net.eval()
