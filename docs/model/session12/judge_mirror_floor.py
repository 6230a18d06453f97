"""One-off (session 12): the judge's floor read plainly and mirror-averaged, on the same renders.

    PYTHONPATH=. python docs/model/session12/judge_mirror_floor.py engine/weights/estimator_b.pt VAL 1024

Reads the source and target renders of PAIRS pairs of SPLIT (sampler seed 0, batches of 32, the default
SynthConfig) with the estimator as is and with ``MirrorAveraged`` (strip and mirror, yaws negated back, averaged),
and prints the mean gaze error over all strips and open-eyed strips, and the mean head error.
"""

import sys
import time

import torch

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.strip import angular_error_deg
from engine.train.estimator import MirrorAveraged, load_estimator

torch.set_num_threads(2)
estimator = load_estimator(sys.argv[1])
estimator.eval()
averaged = MirrorAveraged(estimator)
split, pairs = Split[sys.argv[2]], int(sys.argv[3])
sampler = SynthSampler(SynthConfig(), split, 0, 32, torch.device("cpu"))
errors: dict[str, list[torch.Tensor]] = {k: [] for k in ("g0", "g1", "h0", "h1", "open")}
start = time.time()
with torch.no_grad():
    for i in range(pairs // 32):
        batch = sampler.pairs(i)
        for strips in (batch.source, batch.target):
            plain, mirrored = estimator(strips.image), averaged(strips.image)
            errors["g0"].append(angular_error_deg(plain.gaze, strips.gaze))
            errors["g1"].append(angular_error_deg(mirrored.gaze, strips.gaze))
            errors["h0"].append(angular_error_deg(plain.head, strips.head))
            errors["h1"].append(angular_error_deg(mirrored.head, strips.head))
            errors["open"].append(~strips.closed)
g0, g1, h0, h1, op = (torch.cat(errors[k]) for k in ("g0", "g1", "h0", "h1", "open"))
print(f"{sys.argv[1]} {split} strips {len(g0)} open {int(op.sum())} ({time.time() - start:.0f}s)")
print(f"gaze all {g0.mean():.3f} -> mirror {g1.mean():.3f}; open {g0[op].mean():.3f} -> {g1[op].mean():.3f}")
print(f"head all {h0.mean():.3f} -> mirror {h1.mean():.3f}")
