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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from engine.data.synth import Split, SynthConfig, SynthSampler
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
    a, b, c, d = (float(v) for v in torch.rad2deg(values).tolist())
    return a, b, c, d


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
        bias_deg=_four(bias),
        stderr_deg=_four(stderr),
        offset_deg=_four(new_offset),
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
