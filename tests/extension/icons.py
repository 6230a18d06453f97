"""The browser extension's toolbar icons, drawn here (nothing is downloaded): an eye on the demo page's blue-green
gradient, and a grey one for "camera shown uncorrected".

``python -m tests.extension.icons`` rewrites ``web/extension/icons/``; the tests check the files match.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

ICON_DIR = Path(__file__).resolve().parents[2] / "web" / "extension" / "icons"
SIZES = (16, 32, 48, 128)
SUPERSAMPLE = 8  # drawn this many times larger, then area-averaged: smooth edges at every size
# (top-left, bottom-right) colours, RGB: the demo page's accent gradient, and slate grey when Mirada is bypassed.
PALETTES = {
    "mirada": ((124, 156, 255), (79, 209, 197)),
    "mirada-off": ((100, 116, 139), (148, 163, 184)),
}


def _rounded_square(n: int, radius: float) -> NDArray[np.float32]:
    """An ``n x n`` coverage mask of a square with rounded corners."""
    mask = np.zeros((n, n), np.uint8)
    r = int(radius)
    cv2.rectangle(mask, (r, 0), (n - 1 - r, n - 1), (255,), -1)
    cv2.rectangle(mask, (0, r), (n - 1, n - 1 - r), (255,), -1)
    for cx, cy in ((r, r), (n - 1 - r, r), (r, n - 1 - r), (n - 1 - r, n - 1 - r)):
        cv2.circle(mask, (cx, cy), r, (255,), -1, cv2.LINE_AA)
    return mask.astype(np.float32) / 255.0


def _almond(n: int, cx: float, cy: float, half_w: float, half_h: float) -> NDArray[np.int32]:
    """The outline of an eye opening (upper and lower lids as cosine arches), as polygon points."""
    t = np.linspace(-1.0, 1.0, 96)
    x = cx + t * half_w
    lid = np.cos(t * np.pi / 2) ** 0.9
    upper = np.stack([x, cy - half_h * lid], axis=1)
    lower = np.stack([x[::-1], cy + half_h * 0.85 * lid[::-1]], axis=1)
    return np.asarray(np.round(np.concatenate([upper, lower])), dtype=np.int32)


def render(size: int, palette: str) -> NDArray[np.uint8]:
    """One icon, ``size x size`` RGBA."""
    n = size * SUPERSAMPLE
    top_left, bottom_right = (np.array(c, np.float32) for c in PALETTES[palette])
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / (n - 1)
    mix = ((xx + yy) / 2)[..., None]
    rgb = top_left * (1 - mix) + bottom_right * mix
    alpha = _rounded_square(n, 0.22 * n)

    # The eye: white almond, dark iris, pupil, a catch light. Larger at 16 px so it still reads.
    scale = 1.12 if size <= 16 else 1.0
    cx, cy = n / 2, n * 0.52
    white = np.zeros((n, n), np.uint8)
    cv2.fillPoly(white, [_almond(n, cx, cy, 0.40 * n * scale, 0.24 * n * scale)], (255,), cv2.LINE_AA)
    white_f = (white.astype(np.float32) / 255.0)[..., None]
    rgb = rgb * (1 - white_f) + np.array((250, 252, 255), np.float32) * white_f

    def disc(x: float, y: float, r: float) -> NDArray[np.float32]:
        mask = np.zeros((n, n), np.uint8)
        cv2.circle(mask, (round(x), round(y)), round(r), (255,), -1, cv2.LINE_AA)
        return ((mask.astype(np.float32) / 255.0) * white_f[..., 0])[..., None]

    iris = disc(cx, cy, 0.17 * n * scale)
    rgb = rgb * (1 - iris) + np.array((27, 36, 54), np.float32) * iris
    pupil = disc(cx, cy, 0.075 * n * scale)
    rgb = rgb * (1 - pupil) + np.array((5, 7, 10), np.float32) * pupil
    glint = disc(cx + 0.06 * n * scale, cy - 0.06 * n * scale, 0.035 * n * scale)
    rgb = rgb * (1 - glint) + np.array((255, 255, 255), np.float32) * glint

    rgba = np.concatenate([rgb, alpha[..., None] * 255.0], axis=2)
    small = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(np.clip(np.round(small), 0, 255), dtype=np.uint8)


def icon_files() -> dict[str, NDArray[np.uint8]]:
    """File name -> RGBA pixels, for every icon the extension uses."""
    return {f"{palette}-{size}.png": render(size, palette) for palette in PALETTES for size in SIZES}


def write(directory: Path = ICON_DIR) -> list[Path]:
    """Write every icon into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rgba in icon_files().items():
        path = directory / name
        bgra = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)
        if not cv2.imwrite(str(path), bgra):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write(Path(sys.argv[1]) if len(sys.argv) > 1 else ICON_DIR):
        print(written)
