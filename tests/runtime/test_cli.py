"""``mirada correct``, ``mirada bench`` and ``mirada export``, run as a user would (through Typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from typer.testing import CliRunner

import engine.runtime.cli as runtime_cli
from engine.cli import app
from engine.runtime.media import probe_video, read_image, write_image
from engine.runtime.samples import animate, fit_to_frame
from engine.weights import DEFAULT_ONNX
from tests.runtime.fakes import write_test_video

runner = CliRunner()
Frame = NDArray[np.uint8]


def test_correct_an_image_with_telemetry(tmp_path: Path, grace_hopper: Frame) -> None:
    src, out, log = tmp_path / "in.png", tmp_path / "out.png", tmp_path / "t.jsonl"
    write_image(src, grace_hopper)
    args = ["correct", str(src), str(out), "--target", "-10,0", "--telemetry", str(log), "--backend", "onnxruntime"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    corrected = read_image(out)
    assert corrected.shape == grace_hopper.shape
    assert not np.array_equal(corrected, grace_hopper)
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["faces"][0]["target_deg"] == [-10.0, 0.0]
    assert record["faces"][0]["strength"] == 1.0


def test_correct_with_the_mirror_ensemble(tmp_path: Path, grace_hopper: Frame) -> None:
    src, log = tmp_path / "in.png", tmp_path / "t.jsonl"
    write_image(src, grace_hopper)
    outputs = {}
    # Files are corrected offline, so the ensemble is the default.
    for flag in ("--no-mirror", "--mirror", None):
        out = tmp_path / f"out{flag}.png"
        args = ["correct", str(src), str(out), "--target", "-10,0", "--telemetry", str(log), "--backend", "onnxruntime"]
        result = runner.invoke(app, args if flag is None else [*args, flag])
        assert result.exit_code == 0, result.output
        outputs[flag] = read_image(out)
        record = json.loads(log.read_text().splitlines()[0])
        assert record["backend"] == ("onnxruntime" if flag == "--no-mirror" else "onnxruntime+mirror")
    # Both correct the eyes, differently.
    assert not np.array_equal(outputs["--mirror"], grace_hopper)
    assert not np.array_equal(outputs["--mirror"], outputs["--no-mirror"])
    assert np.array_equal(outputs["--mirror"], outputs[None])


def test_correct_a_video_keeps_rate_audio_and_frames(tmp_path: Path, grace_hopper: Frame) -> None:
    base = fit_to_frame(grace_hopper, 320, 240)
    src, out, log = tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "t.jsonl"
    write_test_video(src, [animate(base, i) for i in range(8)], fps=24)
    result = runner.invoke(app, ["correct", str(src), str(out), "--telemetry", str(log), "--backend", "onnxruntime"])
    assert result.exit_code == 0, result.output
    info = probe_video(out)
    assert info.fps == pytest.approx(24.0)
    assert info.audio
    assert info.frames == 8
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["frame_index"] for r in records] == list(range(8))
    assert all(len(r["faces"]) == 1 for r in records)
    # The strength ramps in over the first frames of a video.
    strengths = [r["faces"][0]["strength"] for r in records]
    assert strengths[0] < strengths[-1]


def test_correct_refuses_bad_arguments(tmp_path: Path, grace_hopper: Frame) -> None:
    src = tmp_path / "in.png"
    write_image(src, grace_hopper)
    bad_target = runner.invoke(app, ["correct", str(src), str(tmp_path / "o.png"), "--target", "10"])
    assert bad_target.exit_code != 0
    assert "PITCH" in bad_target.output or "two numbers" in bad_target.output
    out_of_range = runner.invoke(app, ["correct", str(src), str(tmp_path / "o.png"), "--strength", "2"])
    assert out_of_range.exit_code != 0
    mixed = runner.invoke(app, ["correct", str(src), str(tmp_path / "o.mp4")])
    assert mixed.exit_code != 0
    assert "both be images" in mixed.output


def test_bench_reports_stages_and_network_scaling() -> None:
    args = ["bench", "--frames", "3", "--network-repeats", "1", "--backend", "onnxruntime", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["backend"] == "onnxruntime"
    assert (report["width"], report["height"], report["frames"]) == (640, 480, 3)
    assert report["faces_found"] == 1.0
    assert set(report["stages"]) == {"face", "pose", "strip", "net", "paste", "total"}
    for stats in report["stages"].values():
        assert 0.0 <= stats["p50"] <= stats["p95"] <= stats["max"]
    assert set(report["network"]) == {"1", "8", "32"}
    assert report["fps"] > 0


def test_export_writes_next_to_the_checkpoint_and_guards_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_export(model: Any, path: Path, geometry: Any) -> Path:
        calls.append(Path(path))
        return Path(path)

    # The real export takes ~15 s (torch.export); its output is checked in tests/model and by the parity tests.
    monkeypatch.setattr(runtime_cli, "export_onnx", fake_export)
    monkeypatch.setattr(runtime_cli, "verify_onnx", lambda *a, **k: 1e-6)
    checkpoint = tmp_path / "model.pt"
    checkpoint.symlink_to(DEFAULT_ONNX.with_suffix(".pt"))
    result = runner.invoke(app, ["export", "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert calls == [tmp_path / "model.onnx"]
    result = runner.invoke(app, ["export", str(tmp_path / "x.onnx")])
    assert result.exit_code == 0, result.output
    assert calls[-1] == tmp_path / "x.onnx"
    if not runtime_cli.tensorrt_available():
        result = runner.invoke(app, ["export", str(tmp_path / "y.onnx"), "--trt"])
        assert result.exit_code != 0
        assert "tensorrt" in result.output
    missing = runner.invoke(app, ["export", "--checkpoint", str(tmp_path / "none.pt")])
    assert missing.exit_code != 0
