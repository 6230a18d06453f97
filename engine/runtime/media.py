"""Reading and writing images and videos for the command line (OpenCV), always as RGB uint8 frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
from numpy.typing import NDArray

Uint8Array = NDArray[np.uint8]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
# Codecs OpenCV's own writer can produce without extra libraries, by container.
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def is_image(path: Path) -> bool:
    """True if ``path`` names a still image (by its suffix)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> Uint8Array:
    """An image file as ``H x W x 3`` RGB uint8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read an image from {path}")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def write_image(path: Path, rgb: Uint8Array) -> None:
    """Write an ``H x W x 3`` RGB uint8 image (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write an image to {path}")


class VideoReader:
    """Frames of a video file as RGB uint8, with its frame rate and (approximate) frame count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise FileNotFoundError(f"cannot open a video at {path}")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        # Some containers report no rate; 30 is what a webcam recording most likely had.
        self.fps = fps if np.isfinite(fps) and fps > 0 else 30.0
        self.frame_count = max(int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self.width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def __iter__(self) -> Iterator[Uint8Array]:
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                return
            yield np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)

    def close(self) -> None:
        """Release the file."""
        self._capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class VideoWriter:
    """Writes RGB uint8 frames to a video file at a fixed frame rate (codec from the suffix)."""

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        fourcc = _FOURCC.get(path.suffix.lower())
        if fourcc is None:
            raise ValueError(f"unsupported video container {path.suffix!r}; use one of {', '.join(sorted(_FOURCC))}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.size = (width, height)
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
        if not self._writer.isOpened():
            raise OSError(f"cannot open a {fourcc} video writer for {path}")

    def write(self, rgb: Uint8Array) -> None:
        """Append one frame (it must have the writer's size)."""
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            raise ValueError(f"frame is {rgb.shape[1]} x {rgb.shape[0]}, the video is {self.size[0]} x {self.size[1]}")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        """Finish the file."""
        self._writer.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
