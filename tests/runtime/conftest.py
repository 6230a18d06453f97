"""Shared fixtures of the runtime tests: real face photos shipped in packages, and torch's thread count."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from engine.runtime.samples import sample_face


@pytest.fixture(scope="session")
def grace_hopper() -> NDArray[np.uint8]:
    return sample_face("grace_hopper")


@pytest.fixture(scope="session")
def astronaut() -> NDArray[np.uint8]:
    return sample_face("astronaut")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread (fast on a shared CPU) and restore the process-wide setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
