"""Tiny configurations that keep training and evaluation tests fast on a CPU: 32 x 128 strips, small nets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from engine.data.synth import SynthConfig
from engine.model import RedirectorConfig
from engine.strip import StripGeometry
from engine.train.config import TrainConfig
from engine.train.estimator import EstimatorConfig, GazeHeadEstimator, build_estimator, freeze, save_estimator

TINY_SYNTH = SynthConfig(geometry=StripGeometry(height=32, width=128))
TINY_MODEL = RedirectorConfig(
    height=32,
    width=128,
    encoder_channels=(8, 16, 32),
    bottleneck_channels=8,
    hidden_dim=32,
    appearance_dim=8,
    embedding_dim=4,
    decoder_channels=(16, 16, 16, 8),
    skip_channels=4,
    max_flow_px=4.0,
)


def tiny_estimator(arch: str = "a", seed: int = 0) -> GazeHeadEstimator:
    """An untrained, frozen estimator of the given architecture (stands in for a trained one)."""
    torch.manual_seed(seed)
    model = build_estimator(EstimatorConfig(arch="a" if arch == "a" else "b", width=8, hidden_dim=32))
    freeze(model)
    return model


def tiny_estimator_file(path: Path, arch: str = "a") -> Path:
    """Save :func:`tiny_estimator` as a checkpoint at ``path``."""
    save_estimator(tiny_estimator(arch), path)
    return path


def tiny_config(log_dir: Path, **overrides: Any) -> TrainConfig:
    """A CPU training config at batch 4 with the tiny model, logging every step."""
    config = TrainConfig(
        steps=3,
        batch_size=4,
        device="cpu",
        log_dir=str(log_dir),
        log_every=1,
        checkpoint_every=1000,
        synth=TINY_SYNTH,
        model=TINY_MODEL,
    )
    return replace(config, **overrides)
