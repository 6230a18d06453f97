"""The ``mirada`` command line, run as a user would (in-process through Typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
from typer.testing import CliRunner

from engine.cli import app

runner = CliRunner()


def test_synth_preview_writes_a_labelled_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["synth", "preview", str(out), "--n", "4", "--columns", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    assert image is not None
    # two rows of two 64 x 256 strips drawn at twice their size, with a caption band under each
    assert image.shape == (2 * (128 + 16), 2 * 512, 3)
    assert image.std() > 10


def test_synth_bench_reports_a_rate() -> None:
    result = runner.invoke(app, ["synth", "bench", "--batch-size", "4", "--batches", "1", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["strips"] == 8
    assert report["strips_per_second"] > 0


def test_bad_arguments_are_refused() -> None:
    result = runner.invoke(app, ["synth", "preview", "x.png", "--n", "0"])
    assert result.exit_code != 0
