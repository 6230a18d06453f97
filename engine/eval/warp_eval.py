"""What the corrector pastes, scored: the redirector's warp alone against its full output, on same-head pairs.

``mirada eval`` scores the network's full strip output (warp plus colour residual). The corrector pastes the warp
alone by default (``Settings.residual_gain = 0``). :func:`evaluate_warp` scores both on pairs whose target keeps
the source's head pose (``SynthConfig.pair_same_head``: the corrector moves only the gaze), with the network run
as the corrector runs it (target gaze, strength 1):

- ``iris``: the gaze the warp shows, read by :mod:`engine.eval.iris` from where the flow puts the source's
  pupils (no network; exact on true renders), and the least-squares slope of that pupil move on the true one;
- ``judge_full`` / ``judge_warp`` / ``judge_floor``: the judge's gaze error on the full output, on the warp
  alone, and on the true target render;
- ``gaze_move_fraction``: how far along the true move (target gaze minus source gaze) each reading of the warp,
  the full output and the target render lands, as a least-squares slope over the solved open pairs (1: the whole
  move; the judge's slope on the true renders is its own shrink, against which the others compare);
- PSNR of the full output and of the warp alone against the true target render;
- folds (:func:`engine.model.warp.flow_jacobian_det` at or below 0): the share of the strip where the warp folds,
  and whether it folds within ``FOLD_RADIUS_PX`` of a target pupil, where a fold shows as a doubled or smeared iris.

Gaze errors are means over pairs whose source and target eyes are open, also split by spectacles (the iris
reading ignores the lens's refraction) and by the size of the move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.eval.iris import warp_gaze
from engine.eval.metrics import psnr
from engine.model import Redirector
from engine.model.mirror import MirrorEnsemble
from engine.model.warp import FOLD_REACH_PX, flow_jacobian_det, warp
from engine.strip import angular_error_deg
from engine.train.estimator import Judge

# A pupil solved worse than this (strip pixels) sits where the flow folds; such pairs are counted and left out.
MAX_MISS_PX = 0.05
# A fold this close to a target pupil (strip pixels, either axis) touches the iris.
FOLD_RADIUS_PX = float(FOLD_REACH_PX)
# Moves above this many degrees count as large (the split of bench/eval_breakdown.py).
LARGE_MOVE_DEG = 20.0


@dataclass(frozen=True)
class WarpEvalConfig:
    """Which pairs: ``pairs`` same-head pairs of ``split`` (sampler ``seed``, ``batch_size`` a batch);
    ``mirror`` runs the mirror ensemble."""

    pairs: int = 1024
    batch_size: int = 32
    split: Split = Split.TEST
    seed: int = 0
    mirror: bool = False

    def __post_init__(self) -> None:
        if self.pairs < self.batch_size or self.batch_size < 1:
            raise ValueError(f"need pairs >= batch_size >= 1, got {self.pairs} and {self.batch_size}")


def folds_near(det: Tensor, points: Tensor, radius: float = FOLD_RADIUS_PX) -> Tensor:
    """Whether ``det`` (B x (H-1) x (W-1), :func:`engine.model.warp.flow_jacobian_det`) is at or below 0 on any pixel
    square whose centre lies within ``radius`` strip pixels (either axis) of one of ``points`` (B x K x 2,
    (x, y) strip pixels, centres at +0.5) -> B bool."""
    if det.ndim != 3 or points.ndim != 3 or points.shape[0] != det.shape[0] or points.shape[2] != 2:
        raise ValueError(f"need det B x h x w and points B x K x 2, got {tuple(det.shape)} and {tuple(points.shape)}")
    # the square between pixel centres (j + 0.5, i + 0.5) and (j + 1.5, i + 1.5) is centred at (j + 1, i + 1)
    ys = torch.arange(1, det.shape[1] + 1, dtype=points.dtype, device=det.device).view(1, 1, -1, 1)
    xs = torch.arange(1, det.shape[2] + 1, dtype=points.dtype, device=det.device).view(1, 1, 1, -1)
    px, py = points[..., 0, None, None], points[..., 1, None, None]  # -> B x K x 1 x 1
    near = ((xs - px).abs() <= radius) & ((ys - py).abs() <= radius)  # -> B x K x h x w
    return (near & (det <= 0).unsqueeze(1)).flatten(1).any(1)


@torch.no_grad()
def warp_readings(
    model: Redirector, judge: Judge, synth: SynthConfig, config: WarpEvalConfig, progress: bool = True
) -> dict[str, Tensor]:
    """Per-pair readings (N x k, float64), on the model's device: see the module docstring."""
    device = next(model.parameters()).device
    net = MirrorEnsemble.from_redirector(model) if config.mirror else model
    was_training = net.training
    net.eval()
    judge.eval()
    same_head = replace(synth, pair_same_head=True)
    sampler = SynthSampler(same_head, config.split, config.seed, config.batch_size, device)
    geo = same_head.geometry
    rows: dict[str, list[Tensor]] = {}

    def add(key: str, value: Tensor) -> None:
        rows.setdefault(key, []).append(value.detach().double().reshape(len(value), -1).cpu())

    try:
        with tqdm(total=config.pairs, unit="pair", desc="warp alone", disable=not progress) as bar:
            for index in range(config.pairs // config.batch_size):
                batch, source, target = sampler.render_pairs(index)
                s, t = batch.source, batch.target
                out = net(s.image, t.gaze, torch.ones(len(s), device=device))
                warped = warp(s.image, out.flow, (geo.height, geo.width))  # -> B x 3 x H x W
                app = sampler.renderer.appearance(s.subject)
                iris = warp_gaze(app, target.scene, geo, source.pupil_px, out.flow)
                read = judge(torch.cat((out.strip_out, warped, t.image))).gaze.split(len(s))
                add("open", ~(s.closed | t.closed))
                add("glasses", source.glasses)
                add("moved_deg", angular_error_deg(s.gaze, t.gaze))
                add("true_move", target.pupil_px - source.pupil_px)
                add("iris_move", iris.pupils - source.pupil_px)
                add("miss", iris.miss_px)
                add("iris", angular_error_deg(iris.gaze, t.gaze))
                add("gaze_move", t.gaze - s.gaze)  # -> B x 2 (pitch, yaw), radians
                add("gaze_iris", iris.gaze - s.gaze)
                for name, reading in zip(("judge_full", "judge_warp", "judge_floor"), read, strict=True):
                    add(name, angular_error_deg(reading, t.gaze))
                    add(f"gaze_{name}", reading - s.gaze)
                add("psnr_full", psnr(out.strip_out, t.image))
                add("psnr_warp", psnr(warped, t.image))
                det = flow_jacobian_det(out.flow)
                add("fold_share", (det <= 0).flatten(1).double().mean(1))
                add("fold_at_pupil", folds_near(det, target.pupil_px.to(det.dtype)))
                bar.update(len(s))
    finally:
        net.train(was_training)
    return {key: torch.cat(value) for key, value in rows.items()}


def _slope(moved: Tensor, true: Tensor) -> float:
    """The least-squares ``k`` of ``moved ~ k * true`` over all rows and components (N x k each)."""
    return float((moved * true).sum() / true.square().sum().clamp_min(1e-12))


def summarise_warp(readings: dict[str, Tensor]) -> dict[str, Any]:
    """Means per subset (open eyes; with and without spectacles; large and small moves) of every reading, the
    pupil-move slope and the PSNRs, as a JSON-ready dict."""
    opened = readings["open"][:, 0].bool()
    solved = readings["miss"][:, 0] <= MAX_MISS_PX
    glasses = readings["glasses"][:, 0].bool()
    large = readings["moved_deg"][:, 0] > LARGE_MOVE_DEG
    base = opened & solved
    subsets = {
        "open": base,
        "open, no spectacles": base & ~glasses,
        "open, spectacles": base & glasses,
        f"open, moved more than {LARGE_MOVE_DEG:g} deg": base & large,
        f"open, moved {LARGE_MOVE_DEG:g} deg or less": base & ~large,
    }
    names = ("iris", "judge_full", "judge_warp", "judge_floor", "moved_deg")
    table = {
        subset: {"pairs": int(rows.sum()), **{k: float(readings[k][rows, 0].mean()) for k in names}}
        for subset, rows in subsets.items()
    }
    move, true = readings["iris_move"][base], readings["true_move"][base]
    # The judge needs no solve: over every open pair it is not biased by which pairs a warp folds (a fold is
    # most likely on the largest moves, which leaving out would flatter).
    judged = {k: float(readings[k][opened, 0].mean()) for k in ("judge_full", "judge_warp", "judge_floor", "moved_deg")}
    folds = {}
    if "fold_share" in readings:  # readings from before session 17 have none
        folds = {
            "folded_percent": 100.0 * float(readings["fold_share"].mean()),
            "open_pairs_folded_at_a_pupil": int((readings["fold_at_pupil"][:, 0].bool() & opened).sum()),
        }
    along = {}
    if "gaze_move" in readings:  # readings from before session 18 have none
        true_move = readings["gaze_move"][base]
        along = {
            "gaze_move_fraction": {
                name: _slope(readings[f"gaze_{name}"][base], true_move)
                for name in ("iris", "judge_warp", "judge_full", "judge_floor")
            }
        }
    return {
        "pairs": len(opened),
        "unsolved_pairs": int((~solved).sum()),
        **folds,
        **along,
        "judge_every_open_pair": {"pairs": int(opened.sum()), **judged},
        "pupil_move_slope": _slope(move, true),
        "psnr_full_db": float(readings["psnr_full"].mean()),
        "psnr_warp_db": float(readings["psnr_warp"].mean()),
        "gaze_error_deg": table,
    }


def evaluate_warp(
    model: Redirector, judge: Judge, synth: SynthConfig, config: WarpEvalConfig | None = None, progress: bool = True
) -> dict[str, Any]:
    """:func:`warp_readings` summarised by :func:`summarise_warp`, with the config."""
    config = config or WarpEvalConfig()
    summary = summarise_warp(warp_readings(model, judge, synth, config, progress))
    return {"config": {**asdict(config), "split": config.split.name}, **summary}


def warp_table(result: dict[str, Any]) -> str:
    """A result of :func:`evaluate_warp` as a markdown table (gaze errors in degrees, open eyes), with a header line."""
    lines = [
        f"Warp alone (what the corrector pastes) against the full output, {result['pairs']} same-head pairs "
        f"({result['unsolved_pairs']} with a pupil not solved, left out): the warp moves the pupils "
        f"{result['pupil_move_slope']:.3f} of the true move; PSNR {result['psnr_full_db']:.2f} dB full, "
        f"{result['psnr_warp_db']:.2f} dB warp alone."
        + (
            f" The warp folds on {result['folded_percent']:.2f} % of the strip, within {FOLD_RADIUS_PX:g} px of a "
            f"target pupil on {result['open_pairs_folded_at_a_pupil']} open pairs."
            if "folded_percent" in result
            else ""
        )
        + (
            " Along the true gaze move, the warp lands {iris:.3f} of it by the iris reading and {judge_warp:.3f} by "
            "the judge, the full output {judge_full:.3f} by the judge, the target render {judge_floor:.3f} (the "
            "judge's own shrink).".format(**result["gaze_move_fraction"])
            if "gaze_move_fraction" in result
            else ""
        ),
        "",
        "| pairs | n | gaze moved | warp alone, iris | warp alone, judge | full output, judge | judge floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["gaze_error_deg"].items():
        lines.append(
            f"| {name} | {row['pairs']} | {row['moved_deg']:.2f} | {row['iris']:.2f} | {row['judge_warp']:.2f} | "
            f"{row['judge_full']:.2f} | {row['judge_floor']:.2f} |"
        )
    every = result.get("judge_every_open_pair")
    if every is not None:  # results written before session 16 have no such row
        lines.append(
            f"| open, unsolved pairs too | {every['pairs']} | {every['moved_deg']:.2f} | - | "
            f"{every['judge_warp']:.2f} | {every['judge_full']:.2f} | {every['judge_floor']:.2f} |"
        )
    return "\n".join(lines)
