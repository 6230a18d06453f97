"""The real-time corrector: frame -> face -> strip -> network -> paste -> frame.

:class:`Corrector` processes one stream; :func:`select_backend` builds the network backend streams share.
"""

from engine.runtime.backends import Backend, NetOutputs, load_model, select_backend
from engine.runtime.corrector import Corrector, PreparedFrame, batch_inputs
from engine.runtime.settings import Mode, Settings
from engine.runtime.telemetry import FaceTelemetry, Telemetry

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
    "load_model",
    "select_backend",
]
