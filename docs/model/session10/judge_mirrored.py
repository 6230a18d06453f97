"""One-off (session 10): judge B on 1,024 validation strips (512 pairs, seed 0), as they are, mirrored (yaws of the
labels negated), and the mean of the two readings (test-time mirroring of the judge: measured, not used).

    PYTHONPATH=. python docs/model/session10/judge_mirrored.py
"""
import time

import torch

from engine.data.synth import Split, SynthSampler
from engine.strip import angular_error_deg
from engine.train.checkpoint import load_redirector
from engine.train.estimator import load_estimator

torch.manual_seed(0)
judge = load_estimator("engine/weights/estimator_b.pt")
_, cfg, _ = load_redirector("engine/weights/redirector.pt")
sampler = SynthSampler(cfg.synth, Split.VAL, 0, 64, torch.device("cpu"))
mir = torch.tensor([1.0, -1.0])
acc = {k: [] for k in ("plain_g","flip_g","tta_g","plain_h","flip_h","tta_h")}
opens=[]
t0=time.time()
with torch.no_grad():
    for i in range(8):
        p = sampler.pairs(i, 64)
        for b in (p.source, p.target):
            x = b.image
            r = judge(x); rf = judge(x.flip(-1))
            gf, hf = rf.gaze*mir, rf.head*mir
            acc["plain_g"].append(angular_error_deg(r.gaze, b.gaze)); acc["flip_g"].append(angular_error_deg(gf, b.gaze))
            acc["tta_g"].append(angular_error_deg((r.gaze+gf)/2, b.gaze))
            acc["plain_h"].append(angular_error_deg(r.head, b.head)); acc["flip_h"].append(angular_error_deg(hf, b.head))
            acc["tta_h"].append(angular_error_deg((r.head+hf)/2, b.head))
            opens.append(~b.closed)
o = torch.cat(opens)
for k,v in acc.items():
    v=torch.cat(v); print(k, f"all {v.mean():.3f}", f"open {v[o].mean():.3f}" if k.endswith("g") else "")
print("n", len(o), "open", int(o.sum()), f"{time.time()-t0:.0f}s")
