"""Session 17's picture of folds: validation pairs where the session-16 warp folds beside a pupil, and the fold-loss
model's warp on the same pairs.

    PYTHONPATH=. python docs/model/session17/fold_figure.py OLD.pt NEW.pt OUT.png [--pairs 64] [--show 4]

Rows per pair: the source strip, the true target render, the old and the new model's warp alone (what the corrector
pastes), each warp with the pixel squares where it folds drawn red. Pairs are the first ``--show`` same-head
validation pairs (seed 0) on which the old warp folds within 4 px of a target pupil.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from engine.data.synth import Split, SynthSampler
from engine.eval.warp_eval import folds_near
from engine.model.warp import flow_jacobian_det, warp
from engine.train.checkpoint import load_redirector


def _bgr(image: torch.Tensor, folded: torch.Tensor | None = None) -> NDArray[np.uint8]:
    rgb = image.permute(1, 2, 0).clamp(0, 1).numpy().copy()
    if folded is not None:
        mask = np.zeros(rgb.shape[:2], bool)
        mask[:-1, :-1] = folded.numpy()
        rgb[mask] = 0.5 * rgb[mask] + 0.5 * np.array([1.0, 0.0, 0.0])
    big = cv2.resize((rgb[:, :, ::-1] * 255).astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    return big


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("out")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--show", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    old, cfg, _ = load_redirector(args.old)
    new, _, _ = load_redirector(args.new)
    sampler = SynthSampler(replace(cfg.synth, pair_same_head=True), Split.VAL, 0, args.pairs, torch.device("cpu"))
    batch, _, target = sampler.render_pairs(0)
    s, t = batch.source, batch.target
    ones = torch.ones(len(s))
    rows = []
    with torch.no_grad():
        flows = [m.eval()(s.image, t.gaze, ones).flow for m in (old, new)]
        dets = [flow_jacobian_det(f) for f in flows]
        picked = folds_near(dets[0], target.pupil_px) & ~(s.closed | t.closed)
        for i in torch.nonzero(picked)[: args.show, 0].tolist():
            tiles = [_bgr(s.image[i]), _bgr(t.image[i])]
            for flow, det in zip(flows, dets, strict=True):
                warped = warp(s.image[i : i + 1], flow[i : i + 1], (cfg.model.height, cfg.model.width))[0]
                tiles.append(_bgr(warped, det[i] <= 0))
            rows.append(np.hstack([np.vstack(tiles[:2]), np.vstack(tiles[2:])]))
    logging.getLogger("fold_figure").info(
        "%d of %d open pairs fold beside a pupil with the old warp", int(picked.sum()), args.pairs
    )
    cv2.imwrite(args.out, np.vstack(rows))


if __name__ == "__main__":
    main()
