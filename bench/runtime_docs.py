"""Before/after pictures of the corrector on the package photos, for docs/ (``make docs-runtime``).

    python bench/runtime_docs.py [--out docs] [--checkpoint engine/weights/redirector.pt] [--backend torch]

For each photo (scikit-image's astronaut, matplotlib's grace_hopper) it writes ``runtime_<name>.png``: one row
per gaze target (the input, the camera, 10 degrees down and up, 15 degrees to either side) with the face, the
eyes enlarged, and the difference from the input (x4) so it is plain that only the eyes change.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from engine.runtime import Corrector, Settings, load_model, select_backend
from engine.runtime.samples import SAMPLE_NAMES, sample_face

logger = logging.getLogger(__name__)

Image = NDArray[np.uint8]
# (label, pitch, yaw) in degrees; positive pitch is up, positive yaw toward the image left.
TARGETS: tuple[tuple[str, float, float], ...] = (
    ("camera (0, 0)", 0.0, 0.0),
    ("10 deg down", -10.0, 0.0),
    ("10 deg up", 10.0, 0.0),
    ("15 deg image-left", 0.0, 15.0),
    ("15 deg image-right", 0.0, -15.0),
)
FACE_WIDTH = 360
EYES_WIDTH = 540


def _crop(image: Image, box: tuple[float, float, float, float], grow: float) -> tuple[int, int, int, int]:
    """An integer box around ``box`` grown by ``grow`` of its size on each side, clipped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * grow, (y1 - y0) * grow
    h, w = image.shape[:2]
    return max(0, int(x0 - dx)), max(0, int(y0 - dy)), min(w, int(x1 + dx)), min(h, int(y1 + dy))


def _resize(image: Image, width: int) -> Image:
    scale = width / image.shape[1]
    size = (width, max(1, round(image.shape[0] * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA))


def _label(image: Image, text: str) -> Image:
    """``text`` (lines split at ``|``) in white with a dark outline at the top left."""
    out = image.copy()
    for i, line in enumerate(text.split("|")):
        origin = (8, 24 + 24 * i)
        cv2.putText(out, line.strip(), origin, cv2.FONT_HERSHEY_SIMPLEX, 0.65, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(out, line.strip(), origin, cv2.FONT_HERSHEY_SIMPLEX, 0.65, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def sheet(corrector: Corrector, photo: Image) -> Image:
    """The before/after sheet of one photo."""
    rows: list[Image] = []
    outputs: list[tuple[str, Image, list[tuple[int, int, int, int]]]] = []
    face_box: tuple[float, float, float, float] | None = None
    for label, pitch, yaw in TARGETS:
        out, telemetry = corrector.process(photo, Settings(target_pitch_deg=pitch, target_yaw_deg=yaw))
        if not telemetry.faces:
            raise RuntimeError("no face found in the photo")
        face = telemetry.faces[0]
        face_box = face.box
        est = face.gaze_deg
        text = f"target: {label}" + (f"|input gaze est. {est[0]:+.0f}, {est[1]:+.0f} deg" if est is not None else "")
        outputs.append((text, out, face.eye_boxes))
    if face_box is None:
        raise RuntimeError("no targets")
    fx0, fy0, fx1, fy1 = _crop(photo, face_box, 0.15)
    eye_boxes = [b for _, _, boxes in outputs for b in boxes]
    if not eye_boxes:
        raise RuntimeError("the corrector changed no eye region")
    ex0 = min(b[0] for b in eye_boxes)
    ey0 = min(b[1] for b in eye_boxes)
    ex1 = max(b[2] for b in eye_boxes)
    ey1 = max(b[3] for b in eye_boxes)
    ex0, ey0, ex1, ey1 = _crop(photo, (ex0, ey0, ex1, ey1), 0.1)
    for text, out, _ in [("input", photo, []), *outputs]:
        face_img = _label(_resize(out[fy0:fy1, fx0:fx1], FACE_WIDTH), text)
        eyes = _resize(out[ey0:ey1, ex0:ex1], EYES_WIDTH)
        diff = np.clip(np.abs(out.astype(np.int16) - photo.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
        diff_img = _label(_resize(diff[fy0:fy1, fx0:fx1], FACE_WIDTH), "difference x4")
        height = max(face_img.shape[0], eyes.shape[0], diff_img.shape[0])
        row = np.full((height, FACE_WIDTH * 2 + EYES_WIDTH + 16, 3), 255, np.uint8)
        row[: face_img.shape[0], :FACE_WIDTH] = face_img
        top = (height - eyes.shape[0]) // 2
        row[top : top + eyes.shape[0], FACE_WIDTH + 8 : FACE_WIDTH + 8 + EYES_WIDTH] = eyes
        row[: diff_img.shape[0], FACE_WIDTH + EYES_WIDTH + 16 :] = diff_img
        rows.append(row)
        rows.append(np.full((6, row.shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1])


def main() -> None:
    """Write the sheets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="output folder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: engine/weights/redirector.pt")
    parser.add_argument("--backend", default="torch", help="inference backend (torch is deterministic here)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    backend = select_backend(args.backend, load_model(args.checkpoint))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in tqdm(SAMPLE_NAMES, desc="photos", unit="photo"):
        with Corrector(backend, video=False) as corrector:
            image = sheet(corrector, sample_face(name))
        path = args.out / f"runtime_{name}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")
        logger.info("wrote %s", path)


if __name__ == "__main__":
    main()
