"""One-off (session 10): does the first render of a fresh process differ from later ones? See first_render.log."""
import sys
import time

import torch

from engine.data.synth import Split, SynthSampler
from tests.train.helpers import TINY_SYNTH

t0 = time.time()
runs = []
for _ in range(3):
    sampler = SynthSampler(TINY_SYNTH, Split.TRAIN, 3, 16, "cpu")
    runs.append(torch.cat([torch.cat((p.source.image, p.target.image)) for p in (sampler.pairs(i) for i in range(3))]))
d12 = (runs[0] - runs[1]).abs().max().item(); d23 = (runs[1] - runs[2]).abs().max().item()
bad = (runs[0] - runs[1]).flatten(1).abs().amax(1).nonzero().flatten().tolist()
print(f"{sys.argv[1]} d12={d12:.3g} d23={d23:.3g} rows={bad[:10]} {time.time()-t0:.0f}s", flush=True)
