"""One-off (session 10): does the mirror ensemble move the gaze as far as the single pass? The slope of critic A's
error on the requested move (as `mirada calibrate` measures it for the move gain), per angle, on 512 training
pairs (seed 202), for the single pass and the ensemble of the shipped (gain-calibrated) model.

    PYTHONPATH=. python docs/model/session10/mirror_undershoot.py
"""
import torch

from engine.data.synth import Split, SynthSampler
from engine.eval.metrics import SourceRedirection
from engine.train.checkpoint import load_redirector
from engine.train.estimator import load_estimator

model, cfg, _ = load_redirector("engine/weights/redirector.pt")
model.eval()
critic = load_estimator("engine/weights/estimator_a.pt")
sampler = SynthSampler(cfg.synth, Split.TRAIN, 202, 32, torch.device("cpu"))
sums = {m: [torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)] for m in (False, True)}
with torch.no_grad():
    for index in range(16):
        pair = sampler.pairs(index)
        s, t = pair.source, pair.target
        labels = model.encode(s.image)
        move = torch.cat((t.gaze - labels.gaze_pl, t.head - labels.head_pl), dim=1).double()
        weight = torch.ones_like(move)
        weight[:, :2] = (~(s.closed | t.closed)).unsqueeze(1).double()
        truth = critic(t.image)
        for mirror in (False, True):
            read = critic(SourceRedirection(model, s.image, mirror).to(t.gaze, t.head))
            error = torch.cat((read.gaze - truth.gaze, read.head - truth.head), dim=1).double()
            sums[mirror][0] += (weight * error * move).sum(0)
            sums[mirror][1] += (weight * move.square()).sum(0)
for mirror, (cross, square) in sums.items():
    slope = (cross / square).tolist()
    print("mirror" if mirror else "single", "slope (gaze pitch, yaw, head pitch, yaw):", [round(v, 4) for v in slope])
