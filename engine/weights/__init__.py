"""The redirector weights that ship with Mirada, in one place.

``redirector.pt`` is a training checkpoint (:func:`engine.train.checkpoint.load_redirector` reads it) and
``redirector.onnx`` its ONNX export (:func:`engine.model.export.export_onnx`), both committed next to this file.
Every command and backend that is not given a checkpoint uses these.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.model.redirector import Redirector

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "redirector.pt"
DEFAULT_ONNX = WEIGHTS_DIR / "redirector.onnx"
# The two gaze/head estimators the shipped model was trained and judged with (docs/MODEL.md): A is the frozen
# critic inside the training losses, B the judge of `mirada eval`. Shipped so that results can be reproduced.
DEFAULT_ESTIMATOR_A = WEIGHTS_DIR / "estimator_a.pt"
DEFAULT_JUDGE = WEIGHTS_DIR / "estimator_b.pt"


def load_default_model(device: str = "cpu") -> Redirector:
    """The shipped redirector in eval mode on ``device``.

    Raises :class:`FileNotFoundError` naming :data:`DEFAULT_CHECKPOINT` if it is not there (a checkout without the
    weights, or an install that left out the package data).
    """
    if not DEFAULT_CHECKPOINT.is_file():
        raise FileNotFoundError(
            f"the shipped redirector weights are missing: no file at {DEFAULT_CHECKPOINT} "
            "(pass a checkpoint explicitly, or restore the file from the repository)"
        )
    from engine.train.checkpoint import load_redirector  # the training stack, only when weights are loaded

    model, _, _ = load_redirector(DEFAULT_CHECKPOINT, device)
    logger.info("loaded the shipped redirector from %s", DEFAULT_CHECKPOINT)
    return model


def default_onnx() -> Path | None:
    """:data:`DEFAULT_ONNX` if it exists, else None (the backends then export the model themselves)."""
    return DEFAULT_ONNX if DEFAULT_ONNX.is_file() else None
