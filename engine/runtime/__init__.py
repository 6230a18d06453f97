"""The real-time corrector: frame -> face -> strip -> network -> paste -> frame.

:class:`Corrector` processes one stream; :func:`select_backend` builds the network backend streams share.

The names are imported on first use (PEP 562), so that ``engine.runtime.backends`` or the geometry modules can be
used on a machine without pydantic or MediaPipe (the GPU benchmark does).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.runtime.backends import Backend, NetOutputs, load_model, select_backend
    from engine.runtime.corrector import Corrector, PreparedFrame, batch_inputs, correct_still
    from engine.runtime.settings import Mode, Settings
    from engine.runtime.telemetry import FaceTelemetry, Telemetry

_WHERE = {
    "Backend": "engine.runtime.backends",
    "NetOutputs": "engine.runtime.backends",
    "load_model": "engine.runtime.backends",
    "select_backend": "engine.runtime.backends",
    "Corrector": "engine.runtime.corrector",
    "PreparedFrame": "engine.runtime.corrector",
    "batch_inputs": "engine.runtime.corrector",
    "correct_still": "engine.runtime.corrector",
    "Mode": "engine.runtime.settings",
    "Settings": "engine.runtime.settings",
    "FaceTelemetry": "engine.runtime.telemetry",
    "Telemetry": "engine.runtime.telemetry",
}

__all__ = [
    "Backend",
    "Corrector",
    "FaceTelemetry",
    "Mode",
    "NetOutputs",
    "PreparedFrame",
    "Settings",
    "Telemetry",
    "batch_inputs",
    "correct_still",
    "load_model",
    "select_backend",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
