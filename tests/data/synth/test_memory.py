"""After ``keep_freed_memory``, a large tensor comes from malloc's reused heap, not from a fresh mmap."""

from __future__ import annotations

import json
import subprocess
import sys

# Measured in a fresh interpreter (the setting is process-wide and cannot be undone in the test process):
# bytes glibc holds in mmapped blocks (mallinfo2's hblkhd) while a 64 MiB tensor is alive, with and without.
_PROBE = """
import ctypes, json, sys
import torch
from engine.data.synth.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
took = keep_freed_memory() if sys.argv[1] == "on" else False
before = libc.mallinfo2().hblkhd
x = torch.ones(1 << 24)
during = libc.mallinfo2().hblkhd
del x
y = torch.ones(1 << 24)  # the heap block freed just before is reused
print(json.dumps({"took": took, "mmapped": during - before, "sum": float(y.sum())}))
"""


def _probe(mode: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_large_tensors_come_from_the_heap_only_after_the_switch() -> None:
    default, kept = _probe("off"), _probe("on")
    assert default["mmapped"] >= 64 << 20  # glibc's default: a fresh mapping per large block
    assert kept["took"]
    assert kept["mmapped"] == 0
    assert kept["sum"] == float(1 << 24)
