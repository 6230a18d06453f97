"""How far the corrector moves the irises of real faces (the package photos): two redirectors side by side.

    python bench/real_iris_move.py --checkpoint runs/s16/redirector.pt [--json out.json]

For each photo, the corrector (default settings: the warp alone is pasted) aims the gaze at two opposite targets,
pitch -10 deg then +10 deg, and yaw +15 deg then -15 deg. An independent MediaPipe instance (photo mode) finds
the iris centres in both outputs. The shift between them, in eye widths (corner to corner), is averaged over the
two eyes. Both redirectors run in the torch backend on the CPU, one after the other in this process, so the
figures compare side by side. An eyeball's radius is about 0.4-0.5 eye widths, so a full 20-degree swing moves
the iris about 0.14-0.17 eye widths and a 30-degree swing 0.21-0.26 (an anatomical estimate, not a measurement).

It also reports, per redirector, the share of the eye strips where the warp the corrector pastes folds (its
Jacobian determinant at or below 0, :func:`engine.model.warp.flow_jacobian_det`), over every strip the network
ran on.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm import tqdm

from engine.model.warp import flow_jacobian_det
from engine.runtime import Settings, correct_still, load_model, select_backend
from engine.runtime.backends.base import Backend, Float32Array, NetOutputs
from engine.runtime.face import FaceTracker
from engine.runtime.samples import SAMPLE_NAMES, sample_face

# (name, first target, second target, image axis, sign): targets are (pitch, yaw) degrees; the shift is
# measured second minus first along the axis (image y grows downward, positive yaw is toward the image left).
SWINGS = (
    ("pitch -10 -> +10", (-10.0, 0.0), (10.0, 0.0), 1, -1.0),
    ("yaw +15 -> -15", (0.0, 15.0), (0.0, -15.0), 0, 1.0),
)


class FoldMeter(Backend):
    """Runs another backend and counts the pixel squares where the flows it returns fold."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.geometry)
        self.inner, self.name = inner, inner.name
        self.folded, self.squares = 0, 0

    def _run(self, strips: Float32Array, target_gaze: Float32Array, strength: Float32Array) -> NetOutputs:
        outputs = self.inner.run(strips, target_gaze, strength)
        det = flow_jacobian_det(torch.from_numpy(outputs.flow))
        self.folded += int((det <= 0).sum())
        self.squares += det.numel()
        return outputs

    @property
    def folded_percent(self) -> float:
        """Share of the pixel squares seen so far that fold, in per cent."""
        return 100.0 * self.folded / max(self.squares, 1)


def _irises(tracker: FaceTracker, frame: NDArray[np.uint8]) -> tuple[NDArray[np.float64], float]:
    faces = tracker.detect(frame)
    if len(faces) != 1:
        raise RuntimeError(f"expected one face in the output, MediaPipe found {len(faces)}")
    return faces[0].irises(), faces[0].eye_width()


def _corrected(backend: Backend, frame: NDArray[np.uint8], pitch: float, yaw: float) -> NDArray[np.uint8]:
    return correct_still(backend, frame, Settings(target_pitch_deg=pitch, target_yaw_deg=yaw))[0]


def measure(backend: Backend, tracker: FaceTracker) -> dict[str, dict[str, float]]:
    """Iris shift in eye widths (mean of both eyes) per photo and swing."""
    result: dict[str, dict[str, float]] = {}
    for name in SAMPLE_NAMES:
        frame = sample_face(name)
        for swing, first, second, axis, sign in SWINGS:
            a, width = _irises(tracker, _corrected(backend, frame, *first))
            b, _ = _irises(tracker, _corrected(backend, frame, *second))
            result.setdefault(name, {})[swing] = float(sign * np.mean(b[:, axis] - a[:, axis]) / width)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="The redirector to compare with the shipped.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("real_iris_move")
    models = {"shipped": load_model(None), str(args.checkpoint): load_model(args.checkpoint)}
    results, folds = {}, {}
    with FaceTracker(video=False) as tracker:
        for label, model in tqdm(models.items(), desc="redirectors"):
            meter = FoldMeter(select_backend("torch", model, cpu_threads=2))
            results[label] = measure(meter, tracker)
            folds[label] = meter.folded_percent
    new = str(args.checkpoint)
    log.info("| photo | swing | shipped | %s | ratio |", new)
    log.info("|---|---|---|---|---|")
    for name in SAMPLE_NAMES:
        for swing, *_ in SWINGS:
            old_shift, new_shift = results["shipped"][name][swing], results[new][name][swing]
            log.info("| %s | %s | %.3f | %.3f | %.2f |", name, swing, old_shift, new_shift, new_shift / old_shift)
    log.info("strip area where the pasted warp folds: shipped %.2f %%, %s %.2f %%", folds["shipped"], new, folds[new])
    if args.json is not None:
        args.json.write_text(json.dumps({**results, "folded_percent": folds}, indent=1))


if __name__ == "__main__":
    main()
