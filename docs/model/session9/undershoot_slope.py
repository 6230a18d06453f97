"""One-off: signed error along the move direction, by meter (A, encoder, B) vs the meter's reading of the target."""
import sys, time, torch
from engine.data.synth import Split, SynthSampler
from engine.train.estimator import load_estimator
from engine.train.checkpoint import load_redirector
torch.set_num_threads(2)
model, cfg, _ = load_redirector("engine/weights/redirector.pt")
A = load_estimator("engine/weights/estimator_a.pt"); B = load_estimator("engine/weights/estimator_b.pt")
split = Split[sys.argv[1]]; npairs = int(sys.argv[2]); useB = split != Split.TRAIN
gains = [1.0, 1.04, 1.08]
sampler = SynthSampler(cfg.synth, split, 11, 32, "cpu")
meters = {"A": lambda x: A(x).gaze, "enc": lambda x: model.encode(x).gaze_pl}
if useB: meters["B"] = lambda x: B(x).gaze
res = {(k, m): [] for k in gains for m in meters}
t0 = time.time()
with torch.no_grad():
    for i in range(npairs // 32):
        p = sampler.pairs(i); s, t = p.source, p.target
        op = ~t.closed
        f = model.encode(s.image)
        move = (t.gaze - s.gaze)[op]; u = move / move.norm(dim=1, keepdim=True).clamp_min(1e-6)
        reads = {m: fn(t.image)[op] for m, fn in meters.items()}
        for k in gains:
            ge = f.gaze_pl + k * (t.gaze - f.gaze_pl)
            out = model.decode(model.redirect(f, ge, t.head), s.image).strip_out
            for m, fn in meters.items():
                d = fn(out)[op] - reads[m]
                res[(k, m)].append(torch.stack(((d * u).sum(1), move.norm(dim=1)), 1))
print(split, npairs, f"{time.time()-t0:.0f}s")
for (k, m), v in res.items():
    v = torch.cat(v); along = v[:, 0]; mag = v[:, 1]
    print(k, m, "mean along-move error deg %.3f; ratio to move %.4f" % (float(along.mean()) * 57.2958, float(along.sum() / mag.sum())))
