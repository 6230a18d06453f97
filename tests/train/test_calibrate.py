"""Calibration of the encoder's pseudo-labels and of the estimators: measured on labelled renders, stored."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import typer
from torch import Tensor
from typer.testing import CliRunner

from engine.data.synth import Split, SynthSampler
from engine.model import Redirector
from engine.train.calibrate import (
    GAIN_CONFIG,
    CalibrationConfig,
    calibrate_checkpoint,
    calibrate_estimator,
    calibrate_gain,
    calibrate_gain_checkpoint,
    calibrate_labels,
)
from engine.train.checkpoint import REDIRECTOR_KIND, load_payload, load_redirector, save_payload, ship_checkpoint
from engine.train.cli import register
from engine.train.config import TrainConfig
from engine.train.estimator import load_estimator
from engine.weights import DEFAULT_CHECKPOINT, DEFAULT_ESTIMATOR_A
from tests.train.helpers import TINY_MODEL, TINY_SYNTH, tiny_estimator, tiny_estimator_file

SMALL = CalibrationConfig(pairs=48, batch_size=16, seed=3)


def _model(seed: int = 0) -> Redirector:
    torch.manual_seed(seed)
    model = Redirector(TINY_MODEL)
    with torch.no_grad():  # labels that depend on the strip, not only on the (zero-initialised) biases
        model.encoder.to_gaze_pl.weight.normal_(0.0, 0.3)
        model.encoder.to_head_pl.weight.normal_(0.0, 0.3)
    return model.eval()


def _encoder_labels(model: Redirector) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    def read(image: Tensor) -> tuple[Tensor, Tensor]:
        factors = model.encode(image)
        return factors.gaze_pl, factors.head_pl

    return read


@torch.no_grad()
def _bias_deg(read: Callable[[Tensor], tuple[Tensor, Tensor]], config: CalibrationConfig) -> Tensor:
    """Mean estimate minus truth (gaze over open eyes, head over all) on the calibration renders, degrees."""
    sampler = SynthSampler(TINY_SYNTH, config.split, config.seed, config.batch_size, "cpu")
    diffs, opens = [], []
    for index in range(math.ceil(config.pairs / config.batch_size)):
        pair = sampler.pairs(index)
        for strips in (pair.source, pair.target):
            gaze, head = read(strips.image)
            diffs.append(torch.cat((gaze - strips.gaze, head - strips.head), dim=1).double())
            opens.append(~strips.closed)
    diff, is_open = torch.cat(diffs), torch.cat(opens)
    return torch.rad2deg(torch.cat((diff[is_open, :2].mean(0), diff[:, 2:].mean(0))))


def test_calibrated_labels_are_unbiased_on_the_renders_and_the_offset_is_their_bias() -> None:
    model = _model()
    # The first renders of a fresh process sometimes differ slightly from all later ones (a known renderer issue,
    # docs/MODEL.md); this test may be the first to render, so it renders once before it measures.
    _bias_deg(_encoder_labels(model), SMALL)
    before = _bias_deg(_encoder_labels(model), SMALL)
    assert before.abs().max() > 0.5  # an untrained encoder is biased: there is something to remove
    result = calibrate_labels(model, TINY_SYNTH, SMALL, progress=False)
    assert result.strips == 2 * SMALL.pairs
    assert torch.allclose(torch.tensor(result.bias_deg, dtype=torch.float64), before, atol=1e-4)
    assert torch.allclose(torch.tensor(result.offset_deg, dtype=torch.float64), before, atol=1e-4)
    assert _bias_deg(_encoder_labels(model), SMALL).abs().max() < 1e-3
    # removing a bias can only lower the mean squared error; the mean angular error moves little either way
    assert result.head_error_after_deg < result.head_error_before_deg + 0.5


def test_calibration_accumulates_and_finds_an_injected_bias() -> None:
    model = _model()
    calibrate_labels(model, TINY_SYNTH, SMALL, progress=False)
    calibrated = model.encoder.get_buffer("label_offset").clone()
    injected = torch.deg2rad(torch.tensor([2.0, -1.0, 0.5, 0.0]))
    model.encoder.get_buffer("label_offset").add_(injected)  # labels now read 2° low in pitch, etc.
    result = calibrate_labels(model, TINY_SYNTH, SMALL, progress=False)
    assert result.bias_deg == pytest.approx([-2.0, 1.0, -0.5, 0.0], abs=1e-3)
    assert result.gaze_error_after_deg < result.gaze_error_before_deg  # the injected 2.2° was worth removing
    assert torch.allclose(model.encoder.get_buffer("label_offset"), calibrated, atol=1e-6)


def test_the_offset_moves_the_labels_and_the_rotation_but_not_the_embeddings() -> None:
    model = _model()
    strip = torch.rand(2, 3, TINY_MODEL.height, TINY_MODEL.width)
    plain = model.encode(strip)
    model.encoder.get_buffer("label_offset").copy_(torch.tensor([0.1, -0.2, 0.05, 0.0]))
    shifted = model.encode(strip)
    assert torch.allclose(shifted.gaze_pl, plain.gaze_pl - torch.tensor([0.1, -0.2]), atol=1e-6)
    assert torch.allclose(shifted.head_pl, plain.head_pl - torch.tensor([0.05, 0.0]), atol=1e-6)
    assert torch.equal(shifted.gaze_emb, plain.gaze_emb)
    target = torch.zeros(2, 2)
    rotated, rotated_plain = model.redirect(shifted, target, target), model.redirect(plain, target, target)
    assert not torch.allclose(rotated.gaze_emb, rotated_plain.gaze_emb)


def test_a_checkpoint_without_an_offset_loads_uncalibrated() -> None:
    state = _model().state_dict()
    del state["encoder.label_offset"]
    model = Redirector(TINY_MODEL)
    model.encoder.get_buffer("label_offset").fill_(1.0)
    model.load_state_dict(state)  # strict: the hook supplies the missing key
    assert torch.equal(model.encoder.get_buffer("label_offset"), torch.zeros(4))
    estimator_state = tiny_estimator("b").state_dict()
    del estimator_state["output_offset"]
    estimator = tiny_estimator("b", seed=1)
    estimator.get_buffer("output_offset").fill_(1.0)
    estimator.load_state_dict(estimator_state)
    assert torch.equal(estimator.get_buffer("output_offset"), torch.zeros(4))


@pytest.mark.parametrize("arch", ["a", "b"])
def test_calibrated_estimators_are_unbiased_on_the_renders(arch: str) -> None:
    estimator = tiny_estimator(arch)
    with torch.no_grad():  # an untrained estimator reads about zero: give it a clear bias to find
        last = [m for m in estimator.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.bias.copy_(torch.tensor([0.1, -0.05, 0.08, 0.02]))

    def read(image: Tensor) -> tuple[Tensor, Tensor]:
        out = estimator(image)
        return out.gaze, out.head

    before = _bias_deg(read, SMALL)
    assert before.abs().max() > 2.0
    result = calibrate_estimator(estimator, TINY_SYNTH, SMALL, progress=False)
    assert torch.allclose(torch.tensor(result.bias_deg, dtype=torch.float64), before, atol=1e-4)
    assert _bias_deg(read, SMALL).abs().max() < 1e-3
    assert result.gaze_error_after_deg < result.gaze_error_before_deg
    assert not estimator.training  # the estimator's mode is restored (tiny_estimator is frozen)


def test_calibrate_checkpoint_handles_estimators(tmp_path: Path) -> None:
    path = tiny_estimator_file(tmp_path / "b.pt", "b")
    result = calibrate_checkpoint(path, tmp_path / "b_cal.pt", CalibrationConfig(pairs=8, batch_size=8), progress=False)
    calibrated = load_estimator(tmp_path / "b_cal.pt")
    offset = torch.rad2deg(calibrated.get_buffer("output_offset")).double()
    assert torch.allclose(offset, torch.tensor(result.offset_deg, dtype=torch.float64), atol=1e-4)
    assert load_payload(tmp_path / "b_cal.pt")["label_calibration"]["strips"] == 16


def _checkpoint(path: Path) -> Path:
    config = TrainConfig(device="cpu", synth=TINY_SYNTH, model=TINY_MODEL)
    payload = {"kind": REDIRECTOR_KIND, "config": config.to_dict(), "model": _model().state_dict(), "optimizer": {}}
    save_payload(payload, path)
    return path


def test_calibrate_checkpoint_stores_offset_and_measurement_and_shipping_keeps_them(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "run.pt")
    result = calibrate_checkpoint(path, tmp_path / "cal.pt", SMALL, progress=False)
    model, _, payload = load_redirector(tmp_path / "cal.pt")
    offset = torch.rad2deg(model.encoder.get_buffer("label_offset")).double()
    assert torch.allclose(offset, torch.tensor(result.offset_deg, dtype=torch.float64), atol=1e-4)
    assert payload["label_calibration"]["config"]["pairs"] == SMALL.pairs
    assert "optimizer" in payload  # a calibrated training checkpoint still resumes
    untouched, _, _ = load_redirector(path)
    assert torch.equal(untouched.encoder.get_buffer("label_offset"), torch.zeros(4))
    shipped, _, slim = load_redirector(ship_checkpoint(tmp_path / "cal.pt", tmp_path / "ship.pt"))
    assert torch.equal(shipped.encoder.get_buffer("label_offset"), model.encoder.get_buffer("label_offset"))
    assert slim["label_calibration"] == payload["label_calibration"]


def test_calibrate_command_replaces_the_checkpoint(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "run.pt")
    app = typer.Typer()
    register(app)
    args = ["calibrate", str(path), "--pairs", "16", "--no-gain", "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "gaze pitch: bias" in result.output
    model, _, _ = load_redirector(path)
    assert model.encoder.get_buffer("label_offset").abs().max() > 0


def test_calibration_config_rejects_empty_runs() -> None:
    with pytest.raises(ValueError, match="positive"):
        CalibrationConfig(pairs=0)
    assert CalibrationConfig().split is Split.TRAIN


# --- the move gain (on the shipped network and critic: an untrained one has no undershoot worth the name) ----

GAIN_PAIRS = replace(GAIN_CONFIG, pairs=64)  # the pairs `mirada calibrate --gain-pairs 64` measures on


@pytest.fixture(scope="module")
def shipped() -> tuple[Redirector, TrainConfig]:
    model, config, _ = load_redirector(DEFAULT_CHECKPOINT)
    return model, config


@pytest.mark.slow
def test_the_move_gain_removes_the_shipped_networks_undershoot_from_any_start(
    shipped: tuple[Redirector, TrainConfig],
) -> None:
    model, config = shipped
    critic = load_estimator(DEFAULT_ESTIMATOR_A)
    gain = model.get_buffer("move_gain")
    kept = gain.clone()
    try:
        # A start 10 % below the shipped gain: its moves fall short. (How far short the network is as trained,
        # at gain one, depends on the model shipped: 4 % for run 3, about 2 % since session 16.)
        gain[:2] = kept[:2] * 0.9
        result = calibrate_gain(model, critic, config.synth, GAIN_PAIRS, progress=False)
        before, after = torch.tensor(result.undershoot_before), torch.tensor(result.undershoot_after)
        assert (before[:2] < -0.05).all()  # gaze moved 5 % or more short of the asked move...
        assert (after[:2].abs() < 0.01).all()  # ... no longer
        assert (after[:2].abs() < before[:2].abs() / 3).all()
        assert result.gain[2:] == (1.0, 1.0)  # the head's gain is left alone
        # near the gain shipped (measured on 1,024 other pairs)
        assert torch.allclose(torch.tensor(result.gain[:2]), kept[:2], atol=0.03)
        assert result.critic_gaze_error_after_deg < result.critic_gaze_error_before_deg
        assert torch.allclose(gain, torch.tensor(result.gain))
        found = gain.clone()
        gain[:2] = found[:2] * 0.8  # a much too short start settles on the same gain
        again = calibrate_gain(model, critic, config.synth, GAIN_PAIRS, progress=False)
        assert again.undershoot_before[0] < -0.15
        assert torch.allclose(gain[:2], found[:2], atol=0.01)
    finally:
        gain.copy_(kept)
    assert not model.training  # modes restored
    assert not critic.training


def test_the_gain_calibration_refuses_a_model_that_does_not_move(shipped: tuple[Redirector, TrainConfig]) -> None:
    model, config = shipped
    gain = model.get_buffer("move_gain")
    kept = gain.clone()
    try:
        gain.fill_(0.0)  # every output stays where the source looked: no gain can fix that
        with pytest.raises(ValueError, match="fifth"):
            calibrate_gain(model, load_estimator(DEFAULT_ESTIMATOR_A), config.synth, GAIN_PAIRS, 1, False)
    finally:
        gain.copy_(kept)
    with pytest.raises(ValueError, match="iterations"):
        calibrate_gain(model, tiny_estimator("a"), TINY_SYNTH, iterations=0, progress=False)


@pytest.mark.slow
def test_calibrate_command_also_calibrates_the_move_gain(tmp_path: Path) -> None:
    path = tmp_path / "shipped.pt"
    path.write_bytes(DEFAULT_CHECKPOINT.read_bytes())
    model, _, _ = load_redirector(path)
    shipped_gain = model.get_buffer("move_gain").clone()
    model.get_buffer("move_gain")[:2] *= 0.9  # a start whose moves fall short
    payload = load_payload(path)
    payload["model"] = model.state_dict()
    save_payload(payload, path)
    app = typer.Typer()
    register(app)
    args = ["calibrate", str(path), "--pairs", "16", "--gain-pairs", "64", "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "gaze pitch: off target by" in result.output
    calibrated, _, stored = load_redirector(path)
    gain = calibrated.get_buffer("move_gain")
    assert torch.allclose(gain, torch.tensor(stored["gain_calibration"]["gain"]))
    assert torch.allclose(gain[:2], shipped_gain[:2], atol=0.03)
    assert torch.equal(gain[2:], shipped_gain[2:])
    # the critic the run was trained against (the shipped run names the shipped A)
    assert Path(stored["gain_calibration"]["critic"]).resolve() == DEFAULT_ESTIMATOR_A.resolve()
    slim = load_payload(ship_checkpoint(path, tmp_path / "ship.pt"))
    assert slim["gain_calibration"] == stored["gain_calibration"]
    direct = calibrate_gain_checkpoint(path, DEFAULT_ESTIMATOR_A, tmp_path / "again.pt", GAIN_PAIRS, 1, "cpu", False)
    assert max(abs(u) for u in direct.undershoot_before[:2]) < 0.01  # already calibrated (on these very pairs)
