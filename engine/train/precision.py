"""Numeric precision of a training step: full float32, or bfloat16 autocast with float32 weights.

Under ``bf16`` the forward pass and the loss run inside :func:`torch.autocast`: convolutions and matrix
products compute in bfloat16, everything autocast keeps in float32 (reductions, norms, ``grid_sample``)
stays there, and the weights, gradients and optimiser state remain float32. bfloat16 has float32's exponent
range, so no loss scaling is needed (unlike float16). Checkpoints and evaluation are always float32.

Whether it is faster depends on the hardware: CUDA GPUs from Ampere on run bfloat16 on their tensor cores, and
x86 CPUs do so only with the AVX512_BF16 or AMX-BF16 instructions. Without them oneDNN emulates bfloat16 in
float32 and a step gets slower: on session 14's 2-core Xeon (AVX-512 and VNNI, no BF16) ``bench/train_precision.py``
measured estimator B at 0.49x and the redirector at 0.53x the fp32 speed. :func:`warn_if_emulated` says so when
a run starts.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Literal, get_args

import torch

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# The x86 flags (as /proc/cpuinfo spells them) of instructions that compute in bfloat16.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")

logger = logging.getLogger(__name__)


def check_precision(precision: str) -> None:
    """Raise ``ValueError`` unless ``precision`` is one this module knows."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """The context a training step's forward pass and loss run in for ``precision`` on ``device``."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"bf16 training runs on cpu or cuda, not {device.type}")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def cpu_computes_bf16(cpuinfo: Path = CPUINFO) -> bool | None:
    """Whether this CPU has bfloat16 instructions (``BF16_CPU_FLAGS``); ``None`` where ``cpuinfo`` cannot tell."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(BF16_CPU_FLAGS & set(line.partition(":")[2].split()))
    return None


def native_bf16(device: torch.device, cpuinfo: Path = CPUINFO) -> bool | None:
    """Whether ``device`` computes in bfloat16 itself rather than emulating it; ``None`` where unknown."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        return cpu_computes_bf16(cpuinfo)
    return None


def warn_if_emulated(device: torch.device, precision: str, cpuinfo: Path = CPUINFO) -> None:
    """Log a warning when ``precision`` is bf16 on a device that would emulate it (slower than fp32)."""
    check_precision(precision)
    if precision == "bf16" and native_bf16(device, cpuinfo) is False:
        logger.warning(
            "bf16 on %s without bfloat16 instructions is emulated and slower than fp32 (0.5x measured on a CPU "
            "without AVX512_BF16, bench/train_precision.py); use --precision fp32 here",
            device,
        )
