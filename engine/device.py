"""Choosing the torch device a command or config names."""

from __future__ import annotations

import torch


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device a config's ``device`` field names: ``auto`` is CUDA (the rank's local GPU) if present, else CPU.

    A bare ``cuda`` also becomes the local GPU, so one config serves every rank of a ``torchrun`` launch.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)
