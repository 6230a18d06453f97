"""Is judge B short of data or of training? Its error on training renders against validation renders, and its cost.

    PYTHONPATH=. python docs/model/session18/judge_underfit.py [CHECKPOINT] [TRAIN_CACHE] [N]

Reads the target strips of N random pairs (default 1,024) of a training-split pair cache (default
runs/s17/pairs.h5, rendered in session 17 with seed 17, which B never saw) and N validation target renders (seed 0),
with B alone and mirror-averaged, and prints the mean gaze (all, open eyes) and head errors of each. Training
subjects read as badly as held-out ones when the network underfits (more training would help it), much better when
it overfits (more data would). Then times three forward and backward passes of B on 64 strips in training mode:
the cost of one training step at 32 pairs on this machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.data.synth.cache import CachedPairs
from engine.strip import angular_error_deg
from engine.train.estimator import MirrorAveraged, load_estimator

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # image, gaze, head, eyes open


def errors(judge: torch.nn.Module, batches: list[Batch]) -> str:
    gaze, head, open_ = [], [], []
    with torch.no_grad():
        for image, g, h, is_open in batches:
            out = judge(image)
            gaze.append(angular_error_deg(out.gaze, g))
            head.append(angular_error_deg(out.head, h))
            open_.append(is_open)
    ge, he, op = torch.cat(gaze), torch.cat(head), torch.cat(open_)
    return f"gaze {ge.mean():.3f} (open eyes {ge[op].mean():.3f}: {int(op.sum())} of {len(op)}), head {he.mean():.3f}"


def main() -> None:
    checkpoint = sys.argv[1] if len(sys.argv) > 1 else "engine/weights/estimator_b.pt"
    cache = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/s17/pairs.h5")
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    torch.set_num_threads(2)
    judge = load_estimator(checkpoint)
    rows = 64
    train = CachedPairs(cache, rows, 0)
    val = SynthSampler(SynthConfig(), Split.VAL, 0, rows, "cpu")
    sets: dict[str, list[Batch]] = {"training subjects (cache)": [], "validation subjects": []}
    for i in range(n // rows):
        t = train.pairs(i).target
        sets["training subjects (cache)"].append((t.image, t.gaze, t.head, ~t.closed))
        v = val.pairs(i).target
        sets["validation subjects"].append((v.image, v.gaze, v.head, ~v.closed))
    print(f"{checkpoint}, {n} target strips each; errors in degrees")
    for name, batches in sets.items():
        print(f"{name}: B {errors(judge, batches)}")
        print(f"{name}: B mirror-averaged {errors(MirrorAveraged(judge), batches)}")
    judge.train()
    for p in judge.parameters():
        p.requires_grad_(True)
    image = sets["training subjects (cache)"][0][0]
    for _ in range(3):
        start = time.perf_counter()
        out = judge(image)
        (out.gaze.sum() + out.head.sum()).backward()
        print(f"forward and backward of 64 strips, training mode: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
