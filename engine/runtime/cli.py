"""Command-line entry points of the runtime: ``correct`` (an image or a video file) and ``bench``.

:func:`register` adds them to the ``mirada`` app.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, TextIO

import typer
from pydantic import ValidationError
from tqdm import tqdm

from engine.runtime.backends import BACKEND_NAMES, Backend, load_model, select_backend
from engine.runtime.bench import NETWORK_BATCHES, BenchReport, bench_corrector, bench_network
from engine.runtime.corrector import Corrector
from engine.runtime.media import VideoReader, VideoWriter, is_image, read_image, write_image
from engine.runtime.samples import SAMPLE_NAMES, SampleName
from engine.runtime.settings import Mode, Settings
from engine.runtime.telemetry import Telemetry

logger = logging.getLogger(__name__)

BackendOption = Annotated[str, typer.Option(help=f"Inference backend: {', '.join(BACKEND_NAMES)}.")]
CheckpointOption = Annotated[
    Path | None, typer.Option(help="Redirector training checkpoint (default: an untrained network).")
]
OnnxOption = Annotated[Path | None, typer.Option(help="Use this ONNX export instead of exporting the model.")]
ThreadsOption = Annotated[int, typer.Option(help="CPU threads of the network (CPU backends).")]


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


def _backend(name: str, checkpoint: Path | None, onnx: Path | None, threads: int) -> Backend:
    if name not in BACKEND_NAMES:
        raise typer.BadParameter(f"--backend must be one of {', '.join(BACKEND_NAMES)}, got {name!r}")
    if threads < 1:
        raise typer.BadParameter("--threads must be positive")
    return select_backend(name, load_model(checkpoint), onnx_path=onnx, cpu_threads=threads)


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
) -> None:
    """Correct the gaze in an image or a video file (the video keeps its frame rate)."""
    pitch, yaw = parse_pair(target, "--target")
    try:
        settings = Settings(
            mode=mode, target_pitch_deg=pitch, target_yaw_deg=yaw, strength=strength, max_faces=max_faces
        )
    except ValidationError as err:
        raise typer.BadParameter(str(err)) from None
    if is_image(source) != is_image(out):
        raise typer.BadParameter("the input and the output must both be images or both be videos")
    net = _backend(backend, checkpoint, onnx, threads)
    with ExitStack() as stack:
        log: TextIO | None = None
        if telemetry is not None:
            telemetry.parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(telemetry.open("w", encoding="utf-8"))
        if is_image(source):
            corrector = stack.enter_context(Corrector(net, video=False))
            result, report = corrector.process(read_image(source), settings)
            write_image(out, result)
            _log_telemetry(log, report)
            typer.echo(f"{source} -> {out}: {len(report.faces)} face(s), {report.total_ms:.1f} ms")
            return
        reader = stack.enter_context(VideoReader(source))
        writer = stack.enter_context(VideoWriter(out, reader.fps, reader.width, reader.height))
        corrector = stack.enter_context(Corrector(net, video=True, fps=reader.fps))
        bar = stack.enter_context(
            tqdm(total=reader.frame_count or None, unit="frame", desc=source.name, disable=not sys.stderr.isatty())
        )
        frames = 0
        for frame in reader:
            result, report = corrector.process(frame, settings, timestamp_s=frames / reader.fps)
            writer.write(result)
            _log_telemetry(log, report)
            frames += 1
            bar.update(1)
    typer.echo(f"{source} -> {out}: {frames} frames at {reader.fps:.2f} fps")


def _log_telemetry(log: TextIO | None, report: Telemetry) -> None:
    if log is not None:
        log.write(report.model_dump_json() + "\n")


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
    net = _backend(backend, checkpoint, onnx, threads)
    report = bench_corrector(net, width, height, frames, faces, sample_name)
    if network_repeats:
        report.network = bench_network(net, NETWORK_BATCHES, network_repeats)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        typer.echo(_format_report(report))


def _format_report(report: BenchReport) -> str:
    lines = [
        f"{report.backend}: {report.width}x{report.height}, {report.faces} face(s) ({report.faces_found:.2f} found "
        f"per frame), {report.frames} frames: {report.fps:.1f} fps",
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


def register(app: typer.Typer) -> None:
    """Add the ``correct`` and ``bench`` commands to ``app``."""
    app.command("correct")(correct_command)
    app.command("bench")(bench_command)
