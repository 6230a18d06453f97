"""The train, train-estimator and eval commands and the ablation, run through Typer's runner on tiny configs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from engine.eval.metrics import EvalConfig, RedirectionMetrics
from engine.train.checkpoint import load_payload
from engine.train.cli import VARIANTS, ablation_header, plot_ablation, register, run_ablation
from engine.train.config import TrainConfig, to_json_dict
from engine.train.estimator import EstimatorConfig, EstimatorTrainConfig
from engine.train.trainer import TrainSummary
from tests.train.helpers import TINY_SYNTH, tiny_config, tiny_estimator, tiny_estimator_file

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_train_estimator_command_writes_a_checkpoint(tmp_path: Path) -> None:
    config = EstimatorTrainConfig(estimator=EstimatorConfig(width=8, hidden_dim=16), val_batches=1, synth=TINY_SYNTH)
    config_path = tmp_path / "estimator.json"
    config_path.write_text(json.dumps(to_json_dict(config)))
    out = tmp_path / "b.pt"
    args = ["train-estimator", "--config", str(config_path), "--arch", "b", "--steps", "2", "--batch-size", "2"]
    result = runner.invoke(_app(), [*args, "--device", "cpu", "--out", str(out), "--no-progress", "--lr", "2.5e-4"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "estimator b: validation gaze" in result.output
    saved = load_payload(out)["train_config"]
    assert saved["lr"] == 2.5e-4
    assert saved["estimator"]["arch"] == "b"
    assert saved["precision"] == "fp32"

    result = runner.invoke(
        _app(), [*args, "--device", "cpu", "--out", str(out), "--no-progress", "--precision", "bf16"]
    )
    assert result.exit_code == 0, result.output
    assert load_payload(out)["train_config"]["precision"] == "bf16"

    result = runner.invoke(_app(), [*args, "--device", "cpu", "--out", str(out), "--no-progress", "--lr", "0"])
    assert result.exit_code != 0
    assert "lr > 0" in result.output


def test_train_then_eval_commands(tmp_path: Path) -> None:
    estimator = tiny_estimator_file(tmp_path / "a.pt", "a")
    judge = tiny_estimator_file(tmp_path / "b.pt", "b")
    config = tiny_config(tmp_path / "unused", judge_checkpoint=str(judge))
    config.save(tmp_path / "train.json")
    run = tmp_path / "run"
    args = ["train", "--config", str(tmp_path / "train.json"), "--steps", "2", "--out", str(run), "--no-ght"]
    result = runner.invoke(_app(), [*args, "--estimator", str(estimator), "--no-progress", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert "+SG: step 2" in result.output
    assert TrainConfig.load(run / "config.json").precision == "bf16"

    result = runner.invoke(_app(), ["train", "--resume", str(run / "last.pt"), "--steps", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "+SG: step 3" in result.output

    result = runner.invoke(_app(), ["eval", str(run / "last.pt"), "--json", "--pairs", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["pairs"] == 2
    assert set(metrics) >= {"gaze_redirection_deg", "gaze_to_head_deg", "psnr_db", "ssim", "judge_gaze_floor_deg"}

    args = ["eval", str(run / "last.pt"), "--json", "--pairs", "2", "--device", "cpu", "--judge-mirror"]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    averaged = json.loads(result.output)
    # The same outputs and renders, read by the mirror-averaged judge: its readings differ, so do the floors.
    assert averaged["psnr_db"] == metrics["psnr_db"]
    assert averaged["judge_gaze_floor_deg"] != metrics["judge_gaze_floor_deg"]

    args = ["eval", str(run / "last.pt"), "--json", "--pairs", "2", "--device", "cpu", "--warp"]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    with_warp = json.loads(result.output)
    assert with_warp["psnr_db"] == metrics["psnr_db"]  # the same evaluation, and the warp alone beside it
    assert with_warp["warp_alone"]["pairs"] == 2
    assert set(with_warp["warp_alone"]["gaze_error_deg"]["open"]) >= {"iris", "judge_warp", "judge_full"}
    result = runner.invoke(_app(), ["eval", str(run / "last.pt"), "--pairs", "2", "--device", "cpu", "--warp"])
    assert result.exit_code == 0, result.output
    assert "Warp alone" in result.output


def test_train_refuses_a_run_without_an_estimator(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    config.save(tmp_path / "train.json")
    result = runner.invoke(_app(), ["train", "--config", str(tmp_path / "train.json"), "--no-progress"])
    assert result.exit_code != 0
    assert "estimator" in result.output


def test_ablation_trains_every_variant_and_writes_table_and_plot(tmp_path: Path) -> None:
    estimator = tiny_estimator_file(tmp_path / "a.pt", "a")
    judge = tiny_estimator_file(tmp_path / "b.pt", "b")
    tiny_config(tmp_path / "unused").save(tmp_path / "train.json")
    out = tmp_path / "ablation"
    args = ["train", "--ablation", "--config", str(tmp_path / "train.json"), "--steps", "2", "--batch-size", "2"]
    args += ["--seeds", "1", "--eval-pairs", "2", "--estimator", str(estimator), "--judge", str(judge)]
    result = runner.invoke(_app(), [*args, "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output

    table = (out / "ablation.md").read_text()
    assert table.startswith("# Ablation: 2 steps at batch 2, 1 seed(s) from 0, 2 test pairs")
    assert "Steps trained per seed: STED 2; +GHT 2; +SG 2; +GHT+SG 2." in table
    for name, _, _ in VARIANTS:
        assert f"| {name} |" in table
    assert (out / "ablation.png").stat().st_size > 1000
    numbers = json.loads((out / "ablation.json").read_text())
    assert list(numbers["metrics"]) == [name for name, _, _ in VARIANTS]
    assert len(numbers["metrics"]["+GHT+SG"]) == 1
    assert numbers["steps"] == {name: [2] for name, _, _ in VARIANTS}
    assert (out / "ght_sg" / "seed_0" / "last.pt").is_file()


def test_ablation_needs_a_judge(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seeds"):
        run_ablation(tiny_config(tmp_path), 0, tmp_path, tiny_estimator("b"))
    result = runner.invoke(_app(), ["train", "--ablation", "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code != 0
    assert "--judge" in result.output


def test_ablation_header_states_a_time_budget_and_the_steps_each_run_reached(tmp_path: Path) -> None:
    base = replace(tiny_config(tmp_path), max_seconds=600.0, batch_size=16)
    summaries = {"STED": [TrainSummary(241, {}), TrainSummary(239, {})], "+GHT": [TrainSummary(230, {})]}
    header = ablation_header(base, 2, EvalConfig(pairs=512), summaries)
    assert header.startswith(f"# Ablation: 10 min or {base.steps} steps, whichever came first, at batch 16, 2 seed(s)")
    assert "512 test pairs" in header
    assert "Steps trained per seed: STED 241, 239; +GHT 230." in header


def test_ablation_plot_takes_seeds_that_stopped_at_different_steps(tmp_path: Path) -> None:
    # A wall-clock budget stopped one seed earlier than the other: the loss curves must still average.
    def history(last: int) -> list[tuple[int, dict[str, float]]]:
        return [(step, {"reconstruction": 1.0 / step}) for step in range(50, last + 1, 50)] + [
            (last, {"reconstruction": 0.0})
        ]

    metrics = {
        name: [RedirectionMetrics(512, 8.0 + k, 6.0, 4.0, 7.0, 21.8, 0.6, 3.4, 2.4, 483, 7.8, 2.7) for k in range(2)]
        for name, _, _ in VARIANTS
    }
    summaries = {
        name: [TrainSummary(381, {}, history(381)), TrainSummary(263, {}, history(263))] for name, _, _ in VARIANTS
    }
    plot_ablation(metrics, summaries, tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").stat().st_size > 1000
