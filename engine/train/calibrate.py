"""Calibration of the encoder's pseudo-labels (and of the estimators): unbiased on labelled training renders.

The redirector rotates the gaze embedding from the encoder's gaze label ``g_s`` to the target,
``z' = R(g_t) R(g_s)^T z``. Where ``g_s`` reads the gaze, say, 1° too low on average, every rotation turns 1°
too far and every redirected gaze lands 1° above its target. Training cannot remove such a bias by itself: it
rotates from the same labels, and the pseudo-label loss is one term among many. The shipped network had one
(about -1° of gaze pitch, -0.5° of gaze yaw, -0.4° and -0.3° of head, on training and held-out subjects alike;
see docs/MODEL.md), so this module measures it and stores it in the encoder's ``label_offset``, which the
encoder subtracts from its labels (also in the ONNX export and the runtime's gaze estimate).

It only uses the renderer's ground-truth labels of training-split strips (both strips of each pair), never
an estimator: the judge of ``mirada eval`` takes no part, so calibrating cannot game it. The estimators get
the same treatment (:func:`calibrate_estimator`): estimator A, the critic of training, read the gaze pitch of
training renders 1.8° low, which pushes a redirector trained against it to overshoot; the judge B 0.6° high.

The gaze bias is averaged over open eyes only (a closed eye shows no gaze, so its label says nothing of the
encoder's reading); the head bias over all strips.

A second, separate step calibrates the redirector's *move gain* (:func:`calibrate_gain`). With unbiased labels
the shipped decoder still rendered every gaze move about 4-5 % short of what the rotation asked: by estimator A,
by the encoder's own labels of the outputs, and by the judge alike (docs/MODEL.md). The redirector scales each
requested move by ``move_gain`` at inference (:meth:`engine.model.Redirector.aim`); this step finds the gaze
gain for which the outputs, as the training critic (estimator A) reads them, land on average neither short of
nor past A's reading of the true target renders, along each angle. It uses training-split renders and the
critic the model was trained against, never the judge. The head's undershoot is measured too but its gain is
left at one: the runtime never moves the head, and A reads head pose too coarsely (3.8° error) for its slope to
be worth following (on validation pairs, following it made the judge's head error worse, 2.62° -> 2.66°).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor
from tqdm import tqdm

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.eval.metrics import SourceRedirection
from engine.model import Redirector
from engine.strip import angular_error_deg
from engine.train.checkpoint import load_payload, load_redirector, save_payload
from engine.train.config import from_json_dict, to_json_dict
from engine.train.estimator import ESTIMATOR_KIND, EstimatorTrainConfig, GazeHeadEstimator, load_estimator

logger = logging.getLogger(__name__)

# The order of the four angles in every offset, bias and standard error.
COMPONENTS = ("gaze pitch", "gaze yaw", "head pitch", "head yaw")


@dataclass(frozen=True)
class CalibrationConfig:
    """Which renders to calibrate on: ``pairs`` pairs (two strips each) of ``split``, sampler seed ``seed``."""

    pairs: int = 8192
    batch_size: int = 64
    seed: int = 101
    split: Split = Split.TRAIN

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.batch_size < 1:
            raise ValueError(f"pairs and batch_size must be positive, got {self.pairs} and {self.batch_size}")


# The renders the move gain is measured on (other pairs than the labels'; each measurement decodes every pair,
# so fewer): `mirada calibrate`, the recipe and the device scripts take this with their own pair count.
GAIN_CONFIG = CalibrationConfig(pairs=1024, batch_size=32, seed=202)


@dataclass(frozen=True)
class LabelCalibration:
    """The measured label bias and what calibrating changed (angles in degrees).

    ``bias_deg`` (gaze pitch, yaw, head pitch, yaw) is the mean of label minus truth before this calibration,
    ``stderr_deg`` its standard error; ``offset_deg`` the encoder's new ``label_offset``. The errors are the
    mean angular errors of the gaze label (open eyes) and the head label, before and after.
    """

    strips: int
    open_strips: int
    bias_deg: tuple[float, float, float, float]
    stderr_deg: tuple[float, float, float, float]
    offset_deg: tuple[float, float, float, float]
    gaze_error_before_deg: float
    gaze_error_after_deg: float
    head_error_before_deg: float
    head_error_after_deg: float


def _four(values: Tensor) -> tuple[float, float, float, float]:
    """Four values as floats."""
    a, b, c, d = (float(v) for v in values.tolist())
    return a, b, c, d


def _four_deg(values: Tensor) -> tuple[float, float, float, float]:
    """Four angles in radians as floats in degrees."""
    return _four(torch.rad2deg(values))


# Reads (gaze, head) B x 2 each, radians, from strips B x 3 x H x W.
Reader = Callable[[Tensor], tuple[Tensor, Tensor]]


@torch.no_grad()
def _calibrate(
    read: Reader, offset: Tensor, synth: SynthConfig, config: CalibrationConfig, progress: bool, what: str
) -> LabelCalibration:
    """Measure the mean bias of ``read`` on labelled renders and add it to ``offset`` (which ``read`` subtracts)."""
    sampler = SynthSampler(synth, config.split, config.seed, config.batch_size, offset.device)
    labels, truths, opens = [], [], []
    done, index = 0, 0
    with tqdm(total=config.pairs, disable=not progress, desc=f"calibrating {what}", unit="pair") as bar:
        while done < config.pairs:
            n = min(config.batch_size, config.pairs - done)
            pair = sampler.pairs(index, n)
            for strips in (pair.source, pair.target):
                gaze, head = read(strips.image)
                labels.append(torch.cat((gaze, head), dim=1).double())
                truths.append(torch.cat((strips.gaze, strips.head), dim=1).double())
                opens.append(~strips.closed)
            done += n
            index += 1
            bar.update(n)
    label, truth, is_open = torch.cat(labels), torch.cat(truths), torch.cat(opens)
    if not bool(is_open.any()):
        raise ValueError("no open eye among the calibration renders: draw more pairs")
    diff = label - truth  # -> N x 4
    gaze_diff, head_diff = diff[is_open, :2], diff[:, 2:]
    bias = torch.cat((gaze_diff.mean(0), head_diff.mean(0)))
    stderr = torch.cat(
        (gaze_diff.std(0) / math.sqrt(len(gaze_diff)), head_diff.std(0) / math.sqrt(len(head_diff)))
    ).nan_to_num(0.0)
    new_offset = offset.double() + bias
    offset.copy_(new_offset.to(offset.dtype))

    corrected = label - bias
    before_gaze = angular_error_deg(label[is_open, :2], truth[is_open, :2]).mean()
    after_gaze = angular_error_deg(corrected[is_open, :2], truth[is_open, :2]).mean()
    before_head = angular_error_deg(label[:, 2:], truth[:, 2:]).mean()
    after_head = angular_error_deg(corrected[:, 2:], truth[:, 2:]).mean()
    result = LabelCalibration(
        strips=len(label),
        open_strips=int(is_open.sum()),
        bias_deg=_four_deg(bias),
        stderr_deg=_four_deg(stderr),
        offset_deg=_four_deg(new_offset),
        gaze_error_before_deg=float(before_gaze),
        gaze_error_after_deg=float(after_gaze),
        head_error_before_deg=float(before_head),
        head_error_after_deg=float(after_head),
    )
    for name, b, e in zip(COMPONENTS, result.bias_deg, result.stderr_deg, strict=True):
        logger.info("%s bias, %s: %+.3f ± %.3f deg", what, name, b, e)
    return result


def calibrate_labels(
    model: Redirector, synth: SynthConfig, config: CalibrationConfig | None = None, progress: bool = True
) -> LabelCalibration:
    """Measure the bias of ``model``'s pseudo-labels on labelled renders and fold it into its ``label_offset``.

    Runs on the model's device. Calibrating again on the same renders finds a bias of (about) zero: the
    offset accumulates, so it is safe to re-run after further training.
    """
    was_training = model.training
    model.eval()

    def read(image: Tensor) -> tuple[Tensor, Tensor]:
        factors = model.encode(image)
        return factors.gaze_pl, factors.head_pl

    try:
        offset = model.encoder.get_buffer("label_offset")
        return _calibrate(read, offset, synth, config or CalibrationConfig(), progress, "labels")
    finally:
        model.train(was_training)


def calibrate_estimator(
    model: GazeHeadEstimator, synth: SynthConfig, config: CalibrationConfig | None = None, progress: bool = True
) -> LabelCalibration:
    """The same for a gaze/head estimator's outputs, folded into its ``output_offset``.

    A biased critic (estimator A) makes training push every output past its target by that bias; a biased
    judge (B) adds its bias to every error it measures, floors included.
    """
    was_training = model.training
    model.eval()

    def read(image: Tensor) -> tuple[Tensor, Tensor]:
        out = model(image)
        return out.gaze, out.head

    try:
        offset = model.get_buffer("output_offset")
        what = f"estimator {model.config.arch}"
        return _calibrate(read, offset, synth, config or CalibrationConfig(), progress, what)
    finally:
        model.train(was_training)


def calibration_record(config: CalibrationConfig, result: LabelCalibration) -> dict[str, Any]:
    """What a calibrated checkpoint stores under ``label_calibration``: the renders used and the measurement."""
    record: dict[str, Any] = {"config": to_json_dict(config), **to_json_dict(result)}
    return record


def calibrate_checkpoint(
    path: str | Path,
    out: str | Path | None = None,
    config: CalibrationConfig | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> LabelCalibration:
    """Calibrate the redirector or estimator of checkpoint ``path`` and write it to ``out`` (default: ``path``
    itself, replaced atomically), the measurement stored as ``label_calibration``.

    A redirector is calibrated on its own run's renderer settings, an estimator on those it was trained with
    (the defaults where a slimmed checkpoint no longer says). Everything else in the checkpoint (optimiser, RNG
    state, config) is kept, so a calibrated training checkpoint still resumes.
    """
    config = config or CalibrationConfig()
    payload = load_payload(path)
    model: Redirector | GazeHeadEstimator
    if payload.get("kind") == ESTIMATOR_KIND:
        model = load_estimator(path, device)
        trained = payload.get("train_config")
        synth = from_json_dict(EstimatorTrainConfig, trained).synth if trained is not None else SynthConfig()
        result = calibrate_estimator(model, synth, config, progress)
    else:
        model, train_config, payload = load_redirector(path, device)
        result = calibrate_labels(model, train_config.synth, config, progress)
    payload["model"] = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    payload["label_calibration"] = calibration_record(config, result)
    save_payload(payload, out if out is not None else path)
    return result


# --- the move gain ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GainCalibration:
    """The measured undershoot of the redirector's moves and the gain that removes it.

    Per angle (gaze pitch, yaw, head pitch, yaw), ``undershoot_before``/``_after`` is the least-squares slope of
    the output's error on the requested move, as the critic reads both the output and the true target render:
    -0.05 means the outputs land 5 % of the move short, 0 on target on average. ``gain`` is the model's new
    ``move_gain`` (only its gaze part is calibrated). The critic's mean angular errors (gaze over pairs whose
    eyes are both open, head over all) are in degrees.
    """

    pairs: int
    open_pairs: int
    iterations: int
    undershoot_before: tuple[float, float, float, float]
    undershoot_after: tuple[float, float, float, float]
    gain: tuple[float, float, float, float]
    critic_gaze_error_before_deg: float
    critic_gaze_error_after_deg: float
    critic_head_error_before_deg: float
    critic_head_error_after_deg: float


class _Undershoot(NamedTuple):
    """One measurement: the slope of the error on the move per angle (4), and the critic's mean errors."""

    slope: Tensor
    gaze_error_deg: float
    head_error_deg: float
    pairs: int
    opened: int


@torch.no_grad()
def _undershoot(
    model: Redirector, critic: GazeHeadEstimator, synth: SynthConfig, config: CalibrationConfig, bar: tqdm[Any]
) -> _Undershoot:
    device = next(model.parameters()).device
    sampler = SynthSampler(synth, config.split, config.seed, config.batch_size, device)
    cross = torch.zeros(4, dtype=torch.float64, device=device)  # sum of error x move, per angle
    square = torch.zeros(4, dtype=torch.float64, device=device)  # sum of move^2
    gaze_errors, head_errors = [], []
    done, opened, index = 0, 0, 0
    while done < config.pairs:
        n = min(config.batch_size, config.pairs - done)
        pair = sampler.pairs(index, n)
        s, t = pair.source, pair.target
        source = SourceRedirection(model, s.image)  # as inference redirects: through the calibrated gain
        out, factors = source.to(t.gaze, t.head), source.factors
        read = critic(torch.cat((out, t.image)))
        gaze, head = read.gaze.split(n), read.head.split(n)  # output, target render
        error = torch.cat((gaze[0] - gaze[1], head[0] - head[1]), dim=1).double()  # -> B x 4
        move = torch.cat((t.gaze - factors.gaze_pl, t.head - factors.head_pl), dim=1).double()
        # a closed eye shows no gaze: its gaze label and reading say nothing of the move
        both_open = ~(s.closed | t.closed)
        weight = torch.ones_like(move)
        weight[:, :2] = both_open.unsqueeze(1).double()
        cross += (weight * error * move).sum(0)
        square += (weight * move.square()).sum(0)
        gaze_errors.append(angular_error_deg(gaze[0], gaze[1])[both_open])
        head_errors.append(angular_error_deg(head[0], head[1]))
        done += n
        opened += int(both_open.sum())
        index += 1
        bar.update(n)
    if opened == 0:
        raise ValueError("no pair with both eyes open among the calibration renders: draw more pairs")
    # an angle that never moves (e.g. a renderer without head motion) has no slope: leave its gain alone
    slope = torch.where(square > 0, cross / square.clamp_min(1e-12), torch.zeros_like(cross))
    return _Undershoot(slope, float(torch.cat(gaze_errors).mean()), float(torch.cat(head_errors).mean()), done, opened)


def calibrate_gain(
    model: Redirector,
    critic: GazeHeadEstimator,
    synth: SynthConfig,
    config: CalibrationConfig | None = None,
    iterations: int = 2,
    progress: bool = True,
) -> GainCalibration:
    """Set the gaze part of ``model``'s ``move_gain`` so that its outputs land on target on average, as
    ``critic`` reads them (the head part is measured, not changed: see the module's docstring).

    Each iteration measures the slope ``r`` of the output's error on the requested move (per angle, on the same
    training renders) and, the output having moved ``(1 + r)`` of the move at gain ``k``, sets ``k / (1 + r)``.
    The response is close to linear, so two iterations settle it; a last measurement gives the "after" figures.
    Calibrate the labels (:func:`calibrate_labels`) first: a label bias is an offset, which a gain cannot fix.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    config = config or GAIN_CONFIG
    was_training, critic_was_training = model.training, critic.training
    model.eval()
    critic.eval()
    gain = model.get_buffer("move_gain")
    try:
        total = config.pairs * (iterations + 1)
        with tqdm(total=total, disable=not progress, desc="calibrating the move gain", unit="pair") as bar:
            first = measured = _undershoot(model, critic, synth, config, bar)
            for _ in range(iterations):
                response = 1.0 + measured.slope[:2]
                if bool((response < 0.2).any()):
                    raise ValueError(
                        f"the outputs move less than a fifth of the asked gaze move ({response.tolist()}): "
                        "the model or the critic is not trained"
                    )
                gain[:2] = (gain[:2].double() / response).to(gain.dtype)
                measured = _undershoot(model, critic, synth, config, bar)
    finally:
        model.train(was_training)
        critic.train(critic_was_training)
    result = GainCalibration(
        pairs=first.pairs,
        open_pairs=first.opened,
        iterations=iterations,
        undershoot_before=_four(first.slope),
        undershoot_after=_four(measured.slope),
        gain=_four(gain),
        critic_gaze_error_before_deg=first.gaze_error_deg,
        critic_gaze_error_after_deg=measured.gaze_error_deg,
        critic_head_error_before_deg=first.head_error_deg,
        critic_head_error_after_deg=measured.head_error_deg,
    )
    for name, before, after, k in zip(
        COMPONENTS, result.undershoot_before, result.undershoot_after, result.gain, strict=True
    ):
        logger.info("move gain, %s: undershoot %+.4f -> %+.4f, gain %.4f", name, before, after, k)
    return result


def gain_record(config: CalibrationConfig, critic: str | Path, result: GainCalibration) -> dict[str, Any]:
    """What a calibrated checkpoint stores under ``gain_calibration``: renders, critic and the measurement."""
    record: dict[str, Any] = {"config": to_json_dict(config), "critic": str(critic), **to_json_dict(result)}
    return record


def calibrate_gain_checkpoint(
    path: str | Path,
    critic: str | Path,
    out: str | Path | None = None,
    config: CalibrationConfig | None = None,
    iterations: int = 2,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> GainCalibration:
    """Calibrate the move gain of the redirector checkpoint ``path`` against the estimator checkpoint ``critic``
    (the training critic, A) and write it to ``out`` (default: ``path``), the measurement stored as
    ``gain_calibration``; everything else in the checkpoint is kept."""
    config = config or GAIN_CONFIG
    model, train_config, payload = load_redirector(path, device)
    result = calibrate_gain(model, load_estimator(critic, device), train_config.synth, config, iterations, progress)
    payload["model"] = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    payload["gain_calibration"] = gain_record(config, critic, result)
    save_payload(payload, out if out is not None else path)
    return result
