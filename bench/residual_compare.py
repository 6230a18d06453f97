"""Writes docs/runtime_residual.png: the astronaut's eyes with the network's colour residual at gains 0, 0.5, 1.

    python bench/residual_compare.py [--out docs/runtime_residual.png]

Columns: input, target camera, target 15 degrees image-left; rows: residual gain 0 (warp only, the default),
0.5 and 1 (the network's full output). Why the default is 0 is in engine/runtime/settings.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from engine.runtime import Settings, correct_still, load_model, select_backend
from engine.runtime.samples import sample_face


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/runtime_residual.png"))
    args = parser.parse_args()
    image = sample_face("astronaut")
    backend = select_backend("onnxruntime", load_model(None))
    rows = []
    for gain in (0.0, 0.5, 1.0):
        crops: list[NDArray[np.uint8]] = []
        for yaw in (0.0, 15.0):
            out, telemetry = correct_still(backend, image, Settings(target_yaw_deg=yaw, residual_gain=gain))
            boxes = telemetry.faces[0].eye_boxes
            x0, y0 = min(b[0] for b in boxes) - 24, min(b[1] for b in boxes) - 16
            x1, y1 = max(b[2] for b in boxes) + 24, max(b[3] for b in boxes) + 16
            if not crops:
                crops.append(image[y0:y1, x0:x1])
            crops.append(out[y0:y1, x0:x1])
        row = cv2.resize(np.concatenate(crops, 1), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        cv2.putText(row, f"residual gain {gain}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        rows.append(row)
    grid = np.concatenate(rows, 0)
    w = grid.shape[1] // 3
    for i, text in enumerate(("input", "target: camera", "target: 15 deg image-left")):
        cv2.putText(grid, text, (i * w + 8, grid.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
