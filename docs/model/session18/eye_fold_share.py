"""How much of a redirector's fold hinge lies at the eyes, on training pairs.

    PYTHONPATH=. python docs/model/session18/eye_fold_share.py CHECKPOINT [CACHE]

On 256 pairs of a pair cache (default runs/s16/pairs.h5; 4 batches of 64, batch seed 99), with the gaze and head
redirected to the target's as in training: the fold loss (engine.train.losses.fold_loss), the same loss counted at
the eyes only (weight engine.train.losses.eye_cells of the target's eyeball mask), the mean of that weight (the
share of the strip that is eye), and the folded pixel squares, all and at the eyes (weight above one half).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from engine.data.synth.cache import CachedPairs
from engine.model.warp import flow_jacobian_det
from engine.train.checkpoint import load_redirector
from engine.train.losses import eye_cells, fold_loss


def main() -> None:
    checkpoint = sys.argv[1]
    cache = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/s16/pairs.h5")
    torch.set_num_threads(2)
    model, _, _ = load_redirector(checkpoint)
    model.eval()
    pairs = CachedPairs(cache, 64, 99)
    total = at_eyes = eye_share = 0.0
    folded = folded_at_eyes = 0
    batches = 4
    with torch.no_grad():
        for index in range(batches):
            batch = pairs.pairs(index)
            s, t = batch.source, batch.target
            flow = model.decode(model.redirect(model.encode(s.image), t.gaze, t.head), s.image).flow
            weight = eye_cells(t.mask)
            total += float(fold_loss(flow)) / batches
            at_eyes += float(fold_loss(flow, weight=weight)) / batches
            eye_share += float(weight.mean()) / batches
            det = flow_jacobian_det(flow)
            folded += int((det <= 0).sum())
            folded_at_eyes += int(((det <= 0) & (weight > 0.5)).sum())
    print(
        f"{checkpoint} on {cache}, {64 * batches} pairs: fold loss {total:.5f}, at the eyes {at_eyes:.5f} "
        f"({at_eyes / max(total, 1e-12):.0%}); eye share of the strip {eye_share:.3f}; folded squares {folded}, "
        f"at the eyes {folded_at_eyes}"
    )


if __name__ == "__main__":
    main()
