"""Reading and writing images (OpenCV) and videos (PyAV) for the command line, always as RGB uint8 frames.

Videos are re-encoded frame by frame with their timestamps kept (so the frame rate, constant or variable, is
the input's) and the audio copied packet for packet, untouched (re-encoded only if the output container cannot
hold the input's codec).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

logger = logging.getLogger(__name__)

Uint8Array = NDArray[np.uint8]
#: Called once per video frame with the RGB frame and its time in seconds; returns the frame to write.
FrameFunction = Callable[[Uint8Array, float], Uint8Array]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm"})
# Video encoders by output container, best first (a build of FFmpeg may lack some).
_ENCODERS = {
    ".webm": ("libvpx-vp9", "libvpx"),
    ".avi": ("mpeg4",),
}
_DEFAULT_ENCODERS = ("libx264", "mpeg4")
# Near-transparent quality: the corrected video is an intermediate a person compares with the original.
_ENCODER_OPTIONS = {"libx264": {"crf": "17", "preset": "medium"}, "libvpx-vp9": {"crf": "20", "b": "0"}}


def is_image(path: Path) -> bool:
    """True if ``path`` names a still image (by its suffix)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_video(path: Path) -> bool:
    """True if ``path`` names a video container this module writes (by its suffix)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


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


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`transform_video` processed: frames, the input's average frame rate, size and audio."""

    frames: int
    fps: float
    width: int
    height: int
    audio: bool


def probe_video(path: Path) -> VideoInfo:
    """Frame count (from the container; 0 if it does not say), average frame rate, size and audio of a video."""
    import av  # PyAV: only the video paths need it

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            frames=int(stream.frames or 0),
            fps=float(rate) if rate else 0.0,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            audio=bool(container.streams.audio),
        )


def transform_video(source: Path, out: Path, function: FrameFunction, *, progress: bool = True) -> VideoInfo:
    """Write ``out``: every video frame of ``source`` passed through ``function``, the audio copied.

    Each output frame keeps its input frame's timestamp, so the frame rate (also a variable one) and the sync with
    the audio are the input's. A progress bar (on stderr, when it is a terminal) counts the frames.
    """
    import av

    if not is_video(out):
        raise ValueError(f"unsupported video container {out.suffix!r}; use one of {', '.join(sorted(VIDEO_SUFFIXES))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    info = probe_video(source)
    frames = 0
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        v_in = src.streams.video[0]
        v_in.thread_type = "AUTO"
        a_in = src.streams.audio[0] if src.streams.audio else None
        rate = v_in.average_rate or v_in.guessed_rate or Fraction(30)
        v_out = _video_stream(dst, out, rate, info.width, info.height)
        v_out.time_base = v_in.time_base
        a_out, a_encode = _audio_stream(dst, a_in) if a_in is not None else (None, False)
        streams = [s for s in (v_in, a_in) if s is not None]
        with tqdm(total=info.frames or None, unit="frame", desc=source.name, disable=None if progress else True) as bar:
            for packet in src.demux(*streams):
                if packet.stream is a_in and a_out is not None:
                    _write_audio(dst, packet, a_out, a_encode)
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    time_s = float(frame.time) if frame.time is not None else frames / float(rate)
                    result = function(rgb, time_s)
                    if result.shape != rgb.shape or result.dtype != np.uint8:
                        raise ValueError(f"frame function returned {result.shape} {result.dtype}, expected {rgb.shape}")
                    new = av.VideoFrame.from_ndarray(np.ascontiguousarray(result), format="rgb24")
                    new.pts = frame.pts
                    new.time_base = frame.time_base
                    for out_packet in v_out.encode(new):
                        dst.mux(out_packet)
                    frames += 1
                    bar.update(1)
            for out_packet in v_out.encode(None):
                dst.mux(out_packet)
            if a_out is not None and a_encode:
                for out_packet in a_out.encode(None):
                    dst.mux(out_packet)
    return VideoInfo(frames, float(rate), info.width, info.height, a_out is not None)


def _video_stream(dst: Any, out: Path, rate: Fraction, width: int, height: int) -> Any:
    """The output video stream: the best encoder this FFmpeg has for the container."""
    import av

    candidates = _ENCODERS.get(out.suffix.lower(), _DEFAULT_ENCODERS)
    codec = next((c for c in candidates if c in av.codecs_available), None)
    if codec is None:
        raise RuntimeError(f"this FFmpeg build has none of the encoders {candidates} for {out.suffix}")
    stream = dst.add_stream(codec, rate=rate, options=_ENCODER_OPTIONS.get(codec, {}))
    stream.width = width
    stream.height = height
    # 4:2:0 needs even sizes; odd-sized frames keep full chroma instead of being cropped.
    even = width % 2 == 0 and height % 2 == 0
    stream.pix_fmt = "yuv420p" if even or codec != "libx264" else "yuv444p"
    if not even and codec != "libx264":
        raise ValueError(f"{codec} cannot encode an odd frame size {width} x {height}; write an .mp4 instead")
    return stream


def _audio_stream(dst: Any, a_in: Any) -> tuple[Any, bool]:
    """The output audio stream: a copy of the input's if the container takes its codec, else AAC/Opus."""
    try:
        return dst.add_stream_from_template(a_in), False
    except (ValueError, av_error()) as err:
        codec = "libopus" if dst.format.name == "webm" else "aac"
        name = a_in.codec_context.name
        logger.warning("cannot copy %s audio into %s (%s); re-encoding it as %s", name, dst.name, err, codec)
        stream = dst.add_stream(codec, rate=a_in.codec_context.sample_rate)
        return stream, True


def av_error() -> type[Exception]:
    """PyAV's base error class (FFmpegError), imported on use."""
    import av

    error: type[Exception] = av.FFmpegError
    return error


def _write_audio(dst: Any, packet: Any, a_out: Any, encode: bool) -> None:
    if packet.dts is None:  # the demuxer's flush packet carries nothing
        return
    if encode:
        for frame in packet.decode():
            frame.pts = None  # let the encoder number the resampled frames
            for out_packet in a_out.encode(frame):
                dst.mux(out_packet)
        return
    packet.stream = a_out
    dst.mux(packet)
