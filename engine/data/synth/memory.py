"""Keeping freed memory in the process, so a renderer's large tensors are not page-faulted in anew every batch.

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB to 32 MiB) with a fresh ``mmap`` and
returns it with ``munmap`` when it is freed. A rendered batch allocates dozens of tensors of 10 to 100 MB (per-
pixel planes, camera images, the strips); each one came back from the kernel as untouched pages, and the first
write to every 4 KiB page faulted and had the kernel zero it. On the 2-core CPU that capped a plain ``x * 2``
of a 44 MB tensor at 3.1 GB/s, where the same product into reused memory ran at 13.6 GB/s (one-off script).

:func:`keep_freed_memory` tells glibc (through ``mallopt``) to serve large blocks from its heap, which it reuses,
and not to give the heap's top back to the system below 1 GiB. The compiled CPU renderer made 18 to 37 % more
strips per second with it (``python bench/synth_memory.py``, session 6: 1,048, 932 and 996 against 785, 793 and
729 in alternating processes). It is a process-wide setting, made once by the CPU renderer; other C libraries
are left as they are (the call reports False).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
KEEP_BYTES = 1 << 30  # freed memory at the heap's top that stays in the process


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` reuse freed large blocks instead of unmapping them (once per process).

    Returns whether the setting took (False without glibc's ``mallopt``).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        logger.debug("no mallopt in this C library: freed memory is handled as the library does by default")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # no block comes from mmap (large ones come from the heap, which is reused), and the heap is not trimmed
    took = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
    if took:
        logger.debug("malloc keeps freed memory (up to %d MiB at the heap's top)", KEEP_BYTES >> 20)
    return took
