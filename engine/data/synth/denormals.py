"""Flushing denormal floats to zero on every CPU thread of a render, not only on the calling one.

The shading evaluates ``exp`` of large negative numbers everywhere; their denormal results do not matter to the
image, but arithmetic on denormals is slow. ``torch.set_flush_denormal`` sets the flag (the FTZ and DAZ bits of
the x86 MXCSR register) of the calling thread only, while every parallel kernel (eager or compiled) runs half
its work on OpenMP worker threads that keep their own flag: they went on computing denormals, and the calling
thread waited for them. :func:`flush_denormals` also runs the switch once on each thread of the OpenMP team
(a ``GOMP_parallel`` region entered through ``ctypes``), which made the compiled CPU renderer 8 to 16 % faster
on 2 cores (``bench/synth_denormals.py``, session 5). Where the OpenMP runtime is not GNU's (or there is no x86
flag), it falls back to the calling thread alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
from collections.abc import Callable, Iterator

import torch

logger = logging.getLogger(__name__)

_Region = Callable[[bool], None]


@functools.cache
def _team_switch() -> _Region | None:
    """A function that sets the flag on every thread of the OpenMP team, or None without GNU OpenMP."""
    try:
        gomp = ctypes.CDLL("libgomp.so.1")  # the copy torch already loaded, found by its soname
        parallel = gomp.GOMP_parallel
    except (OSError, AttributeError):
        return None
    body_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    parallel.argtypes = [body_type, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    parallel.restype = None
    bodies = {on: body_type(lambda _data, on=on: _set_here(on)) for on in (False, True)}

    def switch(on: bool) -> None:
        # torch's team. Asking its size first also makes torch set up its threads, as its first kernel would: a
        # region opened before that (in a fresh process) made the first renders differ from later ones.
        parallel(bodies[on], None, torch.get_num_threads(), 0)

    return switch


def _set_here(on: bool) -> None:
    torch.set_flush_denormal(on)


def set_flush_denormal_everywhere(on: bool) -> bool:
    """Set (or clear) flushing denormals on the calling thread and on every OpenMP thread of torch's kernels.

    Returns whether the OpenMP threads were reached too (False: only the calling thread was set).
    """
    torch.set_flush_denormal(on)
    switch = _team_switch()
    if switch is None:
        return False
    switch(on)
    return True


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormals to zero on every CPU thread inside the block; the flag is cleared again after it (it is
    process-wide state, and training outside the renderer should compute exactly as it would without it)."""
    if not set_flush_denormal_everywhere(True):
        logger.debug("denormals are flushed on the calling thread only (no GNU OpenMP runtime found)")
    try:
        yield
    finally:
        set_flush_denormal_everywhere(False)
