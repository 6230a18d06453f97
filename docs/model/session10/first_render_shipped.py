"""One-off (session 10): does the first render of a fresh process differ from later ones? See first_render.log."""
import sys
import time

import torch

from engine.data.synth import Split, SynthSampler
from engine.train.checkpoint import load_redirector

_, cfg, _ = load_redirector("engine/weights/redirector.pt")
t0 = time.time()
sampler = SynthSampler(cfg.synth, Split.TRAIN, 5, 16, torch.device("cpu"))
imgs = [sampler.pairs(0).source.image for _ in range(3)]
d12 = (imgs[0] - imgs[1]).abs().max().item(); d23 = (imgs[1] - imgs[2]).abs().max().item()
print(f"{sys.argv[1] if len(sys.argv)>1 else ''} d12={d12:.3g} d23={d23:.3g} {time.time()-t0:.0f}s", flush=True)
