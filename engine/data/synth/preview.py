"""A labelled grid of rendered strips, to look at the synthetic distribution."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import torch

from engine.data.synth.sampler import Rendered

_ARROW_PX = 28.0  # length of a gaze arrow for a gaze 90 degrees from the camera axis


def _direction_px(pitch_yaw: torch.Tensor) -> tuple[float, float]:
    """Image-plane (dx, dy) of a direction (x right, y down), from its camera-frame vector."""
    p, y = float(pitch_yaw[0]), float(pitch_yaw[1])
    return -math.cos(p) * math.sin(y), -math.sin(p)


def draw_grid(rendered: Rendered, columns: int = 4, scale: int = 2) -> npt.NDArray[np.uint8]:
    """An RGB uint8 grid of strips with gaze arrows from each pupil and a caption per strip."""
    strips = rendered.strips
    n = len(strips)
    h, w = strips.image.shape[-2:]
    cell_h, cell_w = h * scale + 16, w * scale
    rows = math.ceil(n / columns)
    canvas = np.full((rows * cell_h, columns * cell_w, 3), 24, np.uint8)
    images = (strips.image.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y0, x0 = r * cell_h, c * cell_w
        tile = cv2.resize(images[i], (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
        dx, dy = _direction_px(strips.gaze[i])
        for eye in range(2):
            px, py = (rendered.pupil_px[i, eye] * scale).tolist()
            tip = (round(px + dx * _ARROW_PX * scale), round(py + dy * _ARROW_PX * scale))
            cv2.arrowedLine(tile, (round(px), round(py)), tip, (255, 220, 0), 1, cv2.LINE_AA, tipLength=0.25)
        hx, hy = _direction_px(strips.head[i])
        centre = (w * scale // 2, h * scale // 2)
        head_tip = (round(centre[0] + hx * _ARROW_PX * scale), round(centre[1] + hy * _ARROW_PX * scale))
        cv2.arrowedLine(tile, centre, head_tip, (0, 200, 255), 1, cv2.LINE_AA, tipLength=0.25)
        canvas[y0 : y0 + h * scale, x0 : x0 + w * scale] = tile
        g = torch.rad2deg(strips.gaze[i]).tolist()
        hd = torch.rad2deg(strips.head[i]).tolist()
        tags = []
        if bool(rendered.glasses[i]):
            tags.append("glasses")
        if bool(strips.closed[i]):
            tags.append("closed")
        caption = (
            f"#{int(strips.subject[i])} gaze {g[0]:+.0f},{g[1]:+.0f} head {hd[0]:+.0f},{hd[1]:+.0f} "
            f"open {float(strips.openness[i]):.2f} {' '.join(tags)}"
        )
        cv2.putText(
            canvas,
            caption,
            (x0 + 3, y0 + h * scale + 12),
            cv2.FONT_HERSHEY_PLAIN,
            0.85,
            (230, 230, 230),
            1,
            cv2.LINE_AA,
        )
    return canvas


def write_grid(rendered: Rendered, path: Path, columns: int = 4) -> None:
    """Write :func:`draw_grid` to an image file (format from the suffix)."""
    grid = draw_grid(rendered, columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write the preview image to {path}")
