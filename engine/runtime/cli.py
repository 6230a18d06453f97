"""Command-line entry points of the runtime: ``correct`` (an image or a video file), ``bench`` and ``export``.

:func:`register` adds them to the ``mirada`` app. Nothing here imports MediaPipe, ONNX Runtime or TensorRT at
import time, so registering the commands costs the other commands nothing.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, TextIO

import numpy as np
import typer
from numpy.typing import NDArray
from pydantic import ValidationError

from engine.model.export import export_onnx, verify_onnx
from engine.runtime.backends import BACKEND_NAMES, MIRROR_DEFAULT, Backend, load_model, select_backend
from engine.runtime.backends.onnx_backend import quiet_exporter
from engine.runtime.backends.tensorrt_backend import MAX_BATCH, TensorRTBackend, tensorrt_available
from engine.runtime.bench import NETWORK_BATCHES, BenchReport, bench_corrector, bench_network
from engine.runtime.corrector import Corrector
from engine.runtime.media import is_image, is_video, read_image, transform_video, write_image
from engine.runtime.samples import SAMPLE_NAMES, SampleName
from engine.runtime.settings import Mode, Settings
from engine.runtime.telemetry import Telemetry
from engine.strip import DEFAULT_STRIP
from engine.weights import DEFAULT_ONNX

logger = logging.getLogger(__name__)

BackendOption = Annotated[str, typer.Option(help=f"Inference backend: {', '.join(BACKEND_NAMES)}.")]
CheckpointOption = Annotated[
    Path | None, typer.Option(help="Redirector training checkpoint (default: engine/weights/redirector.pt).")
]
OnnxOption = Annotated[Path | None, typer.Option(help="Use this ONNX export instead of exporting the model.")]
ThreadsOption = Annotated[int, typer.Option(help="CPU threads of the network (CPU backends).")]
MirrorOption = Annotated[
    bool,
    typer.Option(
        help="Mirror ensemble: redirect each eye strip with its mirror image too and average (more accurate, slower)."
    ),
]


def parse_pair(text: str, name: str) -> tuple[float, float]:
    """Parse ``"A,B"`` into two floats (raises typer.BadParameter naming ``name``)."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise typer.BadParameter(f"{name} must be two numbers separated by a comma, got {text!r}") from None


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WIDTHxHEIGHT"``."""
    parts = text.lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        width, height = int(parts[0]), int(parts[1])
    except ValueError:
        raise typer.BadParameter(f"--size must look like 640x480, got {text!r}") from None
    if width < 16 or height < 16:
        raise typer.BadParameter(f"--size must be at least 16x16, got {text!r}")
    return width, height


def _backend(name: str, checkpoint: Path | None, onnx: Path | None, threads: int, mirror: bool) -> Backend:
    if name not in BACKEND_NAMES:
        raise typer.BadParameter(f"--backend must be one of {', '.join(BACKEND_NAMES)}, got {name!r}")
    if threads < 1:
        raise typer.BadParameter("--threads must be positive")
    try:
        model = load_model(checkpoint)
    except FileNotFoundError as err:
        raise typer.BadParameter(str(err)) from None
    return select_backend(name, model, onnx_path=onnx, cpu_threads=threads, mirror=mirror)


def correct_command(
    source: Annotated[Path, typer.Argument(help="Input image or video.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Argument(help="Output image or video (same kind as the input).")],
    target: Annotated[str, typer.Option(help="Gaze target PITCH,YAW in degrees (0,0 = the camera).")] = "0,0",
    strength: Annotated[float, typer.Option(help="Correction strength, 0 to 1.")] = 1.0,
    mode: Annotated[Mode, typer.Option(help="correct, estimate (telemetry only) or off.")] = Mode.CORRECT,
    backend: BackendOption = "auto",
    telemetry: Annotated[Path | None, typer.Option(help="Write per-frame telemetry here (JSON lines).")] = None,
    max_faces: Annotated[int, typer.Option(help="Most faces to correct per frame.")] = 1,
    checkpoint: CheckpointOption = None,
    onnx: OnnxOption = None,
    threads: ThreadsOption = 2,
    # Offline, accuracy comes first: the file is corrected with the mirror ensemble unless told otherwise.
    mirror: MirrorOption = True,
) -> None:
    """Correct the gaze in an image or a video file (the video keeps its frame rate)."""
    pitch, yaw = parse_pair(target, "--target")
    try:
        settings = Settings(
            mode=mode, target_pitch_deg=pitch, target_yaw_deg=yaw, strength=strength, max_faces=max_faces
        )
    except ValidationError as err:
        raise typer.BadParameter(str(err)) from None
    if is_image(source) != is_image(out) or not (is_image(out) or is_video(out)):
        raise typer.BadParameter("the input and the output must both be images or both be videos (.mp4, .mkv, ...)")
    net = _backend(backend, checkpoint, onnx, threads, mirror)
    with ExitStack() as stack:
        log: TextIO | None = None
        if telemetry is not None:
            telemetry.parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(telemetry.open("w", encoding="utf-8"))
        if is_image(source):
            corrector = stack.enter_context(Corrector(net, video=False))
            result, report = corrector.process(read_image(source), settings, in_place=True)  # a fresh array
            write_image(out, result)
            _log_telemetry(log, report)
            typer.echo(f"{source} -> {out}: {len(report.faces)} face(s), {report.total_ms:.1f} ms")
            return
        corrector = stack.enter_context(Corrector(net, video=True))

        def correct_frame(frame: NDArray[np.uint8], time_s: float) -> NDArray[np.uint8]:
            # The frame is a fresh conversion of the decoded one, so no copy of it is needed.
            result, report = corrector.process(frame, settings, timestamp_s=time_s, in_place=True)
            _log_telemetry(log, report)
            return result

        info = transform_video(source, out, correct_frame)
    audio = "with its audio" if info.audio else "no audio"
    typer.echo(f"{source} -> {out}: {info.frames} frames at {info.fps:.2f} fps, {audio}")


def _log_telemetry(log: TextIO | None, report: Telemetry) -> None:
    if log is not None:
        log.write(json.dumps(report.to_dict()) + "\n")


def bench_command(
    backend: BackendOption = "auto",
    size: Annotated[str, typer.Option(help="Frame size WIDTHxHEIGHT.")] = "640x480",
    frames: Annotated[int, typer.Option(help="Timed frames.")] = 100,
    faces: Annotated[int, typer.Option(help="Copies of the face in the frame.")] = 1,
    sample: Annotated[str, typer.Option(help=f"Face photo: {', '.join(SAMPLE_NAMES)}.")] = "grace_hopper",
    network_repeats: Annotated[int, typer.Option(help="Timed network calls per batch size (0: skip).")] = 5,
    checkpoint: CheckpointOption = None,
    onnx: OnnxOption = None,
    threads: ThreadsOption = 2,
    mirror: MirrorOption = MIRROR_DEFAULT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-stage latency (p50/p95/max) and frame rate of the corrector on a moving real face, and network-only
    latency at batch sizes 1, 8 and 32."""
    width, height = parse_size(size)
    if frames < 1 or faces < 1 or network_repeats < 0:
        raise typer.BadParameter("--frames and --faces must be positive, --network-repeats at least 0")
    if sample not in SAMPLE_NAMES:
        raise typer.BadParameter(f"--sample must be one of {', '.join(SAMPLE_NAMES)}")
    sample_name: SampleName = "astronaut" if sample == "astronaut" else "grace_hopper"
    net = _backend(backend, checkpoint, onnx, threads, mirror)
    report = bench_corrector(net, width, height, frames, faces, sample_name)
    if network_repeats:
        report.network = bench_network(net, NETWORK_BATCHES, network_repeats)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        typer.echo(_format_report(report))


def _format_report(report: BenchReport) -> str:
    machine = report.machine
    lines = [
        f"{report.backend}: {report.width}x{report.height}, {report.faces} face(s) ({report.faces_found:.2f} found "
        f"per frame), {report.frames} frames: {report.fps:.1f} fps",
        f"on {machine['cpu']}, {machine['cores']} cores, load average {machine['load_average_1m']} at the start",
        f"{'stage':<8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}",
    ]
    for name, stats in report.stages.items():
        lines.append(f"{name:<8} {stats.p50:8.2f} {stats.p95:8.2f} {stats.max:8.2f}")
    for batch, stats in report.network.items():
        lines.append(
            f"network batch {batch:>2}: {stats.p50:8.2f} ms per call (p95 {stats.p95:.2f}), "
            f"{stats.p50 / batch:.2f} ms per strip"
        )
    return "\n".join(lines)


def export_command(
    out: Annotated[
        Path | None,
        typer.Argument(help="ONNX file to write (default: engine/weights/redirector.onnx, or next to --checkpoint)."),
    ] = None,
    checkpoint: CheckpointOption = None,
    trt: Annotated[
        bool, typer.Option("--trt", help="Also build the TensorRT engine into the engine cache (needs a GPU).")
    ] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="TensorRT engine cache (default: $MIRADA_CACHE_DIR or ~/.cache/mirada).")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Largest batch of the TensorRT profile.")] = MAX_BATCH,
) -> None:
    """Export the redirector to ONNX (dynamic batch), check it against PyTorch in ONNX Runtime, and with
    ``--trt`` build and cache its TensorRT engine (every parser error and I/O shape is logged)."""
    if max_batch < 1:
        raise typer.BadParameter("--max-batch must be positive")
    try:
        model = load_model(checkpoint)
    except FileNotFoundError as err:
        raise typer.BadParameter(str(err)) from None
    path = out if out is not None else (DEFAULT_ONNX if checkpoint is None else checkpoint.with_suffix(".onnx"))
    with quiet_exporter():
        export_onnx(model, path, DEFAULT_STRIP)
    worst = verify_onnx(model, path, DEFAULT_STRIP, batch_sizes=(1, 3, 8))
    typer.echo(f"wrote {path}; ONNX Runtime matches PyTorch within {worst:.2g} at batch 1, 3 and 8")
    if trt:
        if not tensorrt_available():
            raise typer.BadParameter("--trt needs the tensorrt package and a CUDA device; this machine has neither")
        backend = TensorRTBackend(path, cache_dir=cache_dir, max_batch=max_batch)
        typer.echo(f"TensorRT engine: {backend.engine_path}")
        backend.close()


def register(app: typer.Typer) -> None:
    """Add the ``correct``, ``bench`` and ``export`` commands to ``app``."""
    app.command("correct")(correct_command)
    app.command("bench")(bench_command)
    app.command("export")(export_command)
