"""How much of the strip a redirector's warp folds, on same-head validation pairs (session 17's first measurement).

    PYTHONPATH=. python docs/model/session17/fold_share.py CHECKPOINT [PAIRS]

Prints the share of pixel squares whose Jacobian determinant is at or below 0 (a fold), the share of those within
4 px of the strip's border, and the fold loss (``engine.train.losses.fold_loss``) averaged over the batches.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import torch

from engine.data.synth import Split, SynthSampler
from engine.model.warp import flow_jacobian_det
from engine.train.checkpoint import load_redirector
from engine.train.losses import fold_loss


def main() -> None:
    checkpoint, pairs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 128
    torch.set_num_threads(2)
    model, cfg, _ = load_redirector(checkpoint)
    sampler = SynthSampler(replace(cfg.synth, pair_same_head=True), Split.VAL, 0, 32, torch.device("cpu"))
    folded, squares, at_border, losses = 0, 0, 0, []
    with torch.no_grad():
        for index in range(pairs // 32):
            batch, _, _ = sampler.render_pairs(index)
            s, t = batch.source, batch.target
            flow = model.eval()(s.image, t.gaze, torch.ones(len(s))).flow
            fold = flow_jacobian_det(flow) <= 0
            border = torch.ones_like(fold[0])
            border[4:-4, 4:-4] = False
            folded += int(fold.sum())
            squares += fold.numel()
            at_border += int((fold & border).sum())
            losses.append(float(fold_loss(flow)))
    print(
        f"{checkpoint}: {pairs} VAL pairs, folded {100 * folded / squares:.2f} % of the strip, "
        f"{100 * at_border / max(folded, 1):.0f} % of it within 4 px of the border; "
        f"fold loss {sum(losses) / len(losses):.4f}"
    )


if __name__ == "__main__":
    main()
