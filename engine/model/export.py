"""Export the redirector to ONNX (dynamic batch) and check the file against PyTorch in ONNX Runtime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from engine.model.redirector import Redirector
from engine.strip import StripGeometry

logger = logging.getLogger(__name__)

INPUT_NAMES = ("strip", "target_gaze", "strength")
OUTPUT_NAMES = ("strip_out", "flow", "residual", "mask", "gaze_estimate", "head_estimate")
OPSET = 18


class OnnxMismatchError(RuntimeError):
    """The exported graph disagrees with the PyTorch model beyond the tolerance."""


class _Exported(nn.Module):
    """Wraps the redirector so the graph returns a plain tuple in :data:`OUTPUT_NAMES` order."""

    def __init__(self, model: Redirector) -> None:
        super().__init__()
        self.model = model

    def forward(self, strip: Tensor, target_gaze: Tensor, strength: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model(strip, target_gaze, strength))


def check_model_geometry(model: Redirector, geometry: StripGeometry) -> None:
    """Raise if ``model`` was not built for strips of ``geometry``'s size."""
    cfg = model.config
    if (cfg.height, cfg.width) != (geometry.height, geometry.width):
        raise ValueError(
            f"model expects {cfg.height} x {cfg.width} strips but the geometry is {geometry.height} x {geometry.width}"
        )


def _cpu_copy(model: Redirector) -> Redirector:
    """A copy of ``model`` (of its class: a mirror ensemble stays one) on the CPU in eval mode (the original keeps
    its device and mode)."""
    copy = type(model)(model.config)
    copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return copy.eval()


def _example_inputs(geometry: StripGeometry, batch: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    strip = torch.rand(batch, 3, geometry.height, geometry.width, generator=gen)
    target_gaze = (torch.rand(batch, 2, generator=gen) - 0.5) * 0.6
    strength = torch.rand(batch, generator=gen)
    return strip, target_gaze, strength


def export_onnx(model: Redirector, path: str | Path, geometry: StripGeometry) -> Path:
    """Write ``model`` (in eval mode, on the CPU) to ``path`` as ONNX with a dynamic batch axis.

    Inputs: ``strip`` B x 3 x H x W float32 in [0, 1], ``target_gaze`` B x 2 (pitch, yaw) radians,
    ``strength`` B in [0, 1]. Outputs: :data:`OUTPUT_NAMES`, as in
    :class:`engine.model.redirector.RedirectorOutput`. Uses the dynamo-based exporter (opset 18).
    The model is exported as a copy, so its device and training mode are left as they were.
    """
    check_model_geometry(model, geometry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _Exported(_cpu_copy(model)).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic_shapes = {"strip": {0: batch}, "target_gaze": {0: batch}, "strength": {0: batch}}
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            _example_inputs(geometry, 2, seed=0),
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)
    logger.info("exported the redirector to %s", path)
    return path


def verify_onnx(
    model: Redirector,
    path: str | Path,
    geometry: StripGeometry,
    batch_sizes: tuple[int, ...] = (1, 3),
    atol: float = 1e-4,
    seed: int = 0,
) -> float:
    """Run ``path`` in ONNX Runtime (CPU) and compare every output with ``model`` for each batch size.

    Returns the largest absolute difference; raises :class:`OnnxMismatchError` above ``atol``.
    """
    import onnxruntime as ort  # heavy import, only needed here

    check_model_geometry(model, geometry)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got_inputs = tuple(i.name for i in session.get_inputs())
    got_outputs = tuple(o.name for o in session.get_outputs())
    if got_inputs != INPUT_NAMES or got_outputs != OUTPUT_NAMES:
        raise OnnxMismatchError(f"unexpected ONNX signature: inputs {got_inputs}, outputs {got_outputs}")
    cpu_model = _cpu_copy(model)
    worst = 0.0
    for batch in batch_sizes:
        inputs = _example_inputs(geometry, batch, seed + batch)
        with torch.no_grad():
            expected = tuple(cpu_model(*inputs))
        feeds = {name: t.numpy() for name, t in zip(INPUT_NAMES, inputs, strict=True)}
        results = session.run(list(OUTPUT_NAMES), feeds)
        for name, ref, got in zip(OUTPUT_NAMES, expected, results, strict=True):
            if tuple(got.shape) != tuple(ref.shape):
                raise OnnxMismatchError(f"{name}: shape {got.shape} in ONNX vs {tuple(ref.shape)} in torch")
            err = float(np.max(np.abs(got - ref.numpy()))) if ref.numel() else 0.0
            worst = max(worst, err)
            if err > atol:
                raise OnnxMismatchError(f"{name} at batch {batch}: max |onnx - torch| = {err:.3g} > {atol:g}")
    return worst
