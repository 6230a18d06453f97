"""Real face photos that ship inside installed packages, and a way to animate them into a test video.

Nothing is downloaded: scikit-image's ``astronaut`` (Eileen Collins) and matplotlib's ``grace_hopper.jpg`` are
part of those packages' sample data. They are the faces of the runtime's tests and benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

Uint8Array = NDArray[np.uint8]
SampleName = Literal["grace_hopper", "astronaut"]
SAMPLE_NAMES: tuple[SampleName, ...] = ("grace_hopper", "astronaut")


def sample_face(name: SampleName = "grace_hopper") -> Uint8Array:
    """An ``H x W x 3`` uint8 RGB photo of a face looking roughly into the camera."""
    if name == "astronaut":
        from skimage import data

        load: Callable[[], NDArray[np.uint8]] = data.astronaut  # skimage's loaders are not annotated
        return np.ascontiguousarray(load(), dtype=np.uint8)
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        # get_sample_data returns an open file for a non-.npy sample (its annotation also allows an array).
        handle = cbook.get_sample_data("grace_hopper.jpg")
        if isinstance(handle, np.ndarray):
            raise TypeError("matplotlib returned an array for grace_hopper.jpg, expected a file")
        with handle:
            return np.ascontiguousarray(np.asarray(Image.open(handle).convert("RGB")), dtype=np.uint8)
    raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_NAMES)}")


def fit_to_frame(image: Uint8Array, width: int, height: int, faces: int = 1) -> Uint8Array:
    """A ``height x width`` frame holding ``faces`` copies of ``image`` side by side, each scaled to fit its
    tile (aspect kept) on a grey background."""
    if width < 16 or height < 16 or faces < 1:
        raise ValueError(f"need a frame of at least 16 x 16 and one face, got {width} x {height}, {faces}")
    frame = np.full((height, width, 3), 96, dtype=np.uint8)
    tile_w = width // faces
    scale = min(tile_w / image.shape[1], height / image.shape[0])
    w, h = max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = np.asarray(cv2.resize(image, (w, h), interpolation=interp), dtype=np.uint8)
    y0 = (height - h) // 2
    for i in range(faces):
        x0 = i * tile_w + (tile_w - w) // 2
        frame[y0 : y0 + h, x0 : x0 + w] = resized
    return frame


def animate(frame: Uint8Array, index: int, amplitude: float = 1.0) -> Uint8Array:
    """Frame ``index`` of a small, smooth head motion: the whole frame rotated by up to 2 degrees, shifted by up to
    1.5 % of its width and scaled by up to 2 %, times ``amplitude`` (enough for the tracker to follow a moving
    face, small enough that it never leaves the frame)."""
    height, width = frame.shape[:2]
    t = index / 30.0
    angle = 2.0 * amplitude * math.sin(2.0 * math.pi * 0.31 * t)
    scale = 1.0 + 0.02 * amplitude * math.sin(2.0 * math.pi * 0.17 * t)
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), angle, scale)
    matrix[0, 2] += 0.015 * width * amplitude * math.sin(2.0 * math.pi * 0.23 * t)
    matrix[1, 2] += 0.01 * height * amplitude * math.cos(2.0 * math.pi * 0.19 * t)
    out = cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.asarray(out, dtype=np.uint8)
