"""Training precision: bfloat16 autocast computes in bfloat16 where it should, float32 everywhere else."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from engine.train.precision import autocast, check_precision, cpu_computes_bf16, warn_if_emulated


def test_fp32_leaves_products_in_float32_and_bf16_computes_them_in_bfloat16() -> None:
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ b).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        product = a @ b
    assert product.dtype == torch.bfloat16
    # Same product to bfloat16's precision (8 bits of mantissa), not some other computation.
    torch.testing.assert_close(product.float(), a @ b, rtol=0.05, atol=0.1)
    assert (a @ b).dtype == torch.float32  # the context ends with the block


def test_unknown_precisions_and_devices_are_refused() -> None:
    for name in ("fp16", "float32", ""):
        with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
            check_precision(name)
    with pytest.raises(ValueError, match="cpu or cuda"):
        autocast(torch.device("meta"), "bf16")


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    """A two-processor /proc/cpuinfo with ``flags``."""
    path = tmp_path / f"cpuinfo-{flags.replace(' ', '-')}"
    block = f"model name\t: Test CPU\nflags\t\t: {flags}\n"
    path.write_text(f"processor\t: 0\n{block}\nprocessor\t: 1\n{block}")
    return path


def test_the_cpu_flags_tell_whether_bf16_is_computed_or_emulated(tmp_path: Path) -> None:
    assert cpu_computes_bf16(_cpuinfo(tmp_path, "fpu sse2 avx512f avx512_vnni")) is False
    assert cpu_computes_bf16(_cpuinfo(tmp_path, "fpu avx512f avx512_bf16")) is True
    assert cpu_computes_bf16(_cpuinfo(tmp_path, "fpu amx_bf16 amx_tile")) is True
    assert cpu_computes_bf16(tmp_path / "missing") is None
    (tmp_path / "noflags").write_text("processor\t: 0\n")
    assert cpu_computes_bf16(tmp_path / "noflags") is None


def test_bf16_on_an_emulating_cpu_warns_and_fp32_or_native_bf16_does_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cpu = torch.device("cpu")
    slow, fast = _cpuinfo(tmp_path, "avx512f avx512_vnni"), _cpuinfo(tmp_path, "avx512f avx512_bf16")
    with caplog.at_level(logging.WARNING, logger="engine.train.precision"):
        warn_if_emulated(cpu, "fp32", slow)
        warn_if_emulated(cpu, "bf16", fast)
        assert caplog.records == []
        warn_if_emulated(cpu, "bf16", slow)
    assert "emulated and slower than fp32" in caplog.text
    with pytest.raises(ValueError, match="precision"):
        warn_if_emulated(cpu, "fp16", slow)
