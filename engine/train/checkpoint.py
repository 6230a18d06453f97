"""Checkpoint files: atomic writes, safe loads, RNG state capture and the code version stamped into each.

Checkpoints are plain dictionaries of tensors, numbers, strings, lists and nested dictionaries (configs are
stored as their JSON dictionaries), so they load with ``torch.load(weights_only=True)``: opening a checkpoint
never executes code from it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from engine.model import Redirector
from engine.train.config import TrainConfig

logger = logging.getLogger(__name__)

REDIRECTOR_KIND = "redirector"
FORMAT_VERSION = 1


@functools.cache
def code_version() -> str:
    """``git describe`` of the source tree if it is a git checkout, else the installed package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        described = result.stdout.strip()
        if described:
            return f"git:{described}"
    except (OSError, subprocess.SubprocessError):
        logger.debug("git describe failed in %s; falling back to the package version", root)
    try:
        return f"mirada {importlib.metadata.version('mirada')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def save_payload(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` with :func:`torch.save`, atomically: a crash mid-write never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_payload(path: str | Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_payload` (tensors, numbers, strings and containers only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict):
        raise ValueError(f"{path} is not a checkpoint (expected a dictionary, got {type(payload).__name__})")
    return payload


def require_kind(payload: dict[str, Any], kind: str, path: str | Path) -> None:
    """Raise if ``payload`` is not a checkpoint of ``kind`` (e.g. an estimator passed as a redirector)."""
    got = payload.get("kind")
    if got != kind:
        raise ValueError(f"{path} holds a {got!r} checkpoint, expected {kind!r}")


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """The global torch RNG states (CPU and every CUDA device) and that of ``generator`` if given."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only where the devices exist)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"].cpu())


def load_redirector(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[Redirector, TrainConfig, dict[str, Any]]:
    """The trained redirector of a training checkpoint (in eval mode), its config and the raw payload."""
    payload = load_payload(path, map_location="cpu")
    require_kind(payload, REDIRECTOR_KIND, path)
    config = TrainConfig.from_dict(payload["config"])
    model = Redirector(config.model)
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    return model, config, payload


def ship_checkpoint(path: str | Path, out: str | Path) -> Path:
    """Write the inference part of a redirector training checkpoint to ``out`` (no optimiser or RNG state).

    The result loads with :func:`load_redirector` like the original, at about a third of its size (Adam keeps
    two moments per weight), which is what goes into ``engine/weights``.
    """
    payload = load_payload(path)
    require_kind(payload, REDIRECTOR_KIND, path)
    keep = ("kind", "format", "config", "code_version", "step", "model", "label_calibration", "gain_calibration")
    save_payload({key: payload[key] for key in keep if key in payload}, out)
    return Path(out)
