"""One-off: does a gaze rotation gain k (g_eff = g_s + k (g_t - g_s)) reduce the redirection error? val split."""
import sys, time, torch
from engine.data.synth import Split, SynthSampler
from engine.train.estimator import load_estimator
from engine.train.checkpoint import load_redirector
from engine.strip import angular_error_deg
torch.set_num_threads(2)
model, cfg, _ = load_redirector("engine/weights/redirector.pt")
A = load_estimator("engine/weights/estimator_a.pt"); B = load_estimator("engine/weights/estimator_b.pt")
split = Split[sys.argv[1]] if len(sys.argv) > 1 else Split.VAL
npairs = int(sys.argv[2]) if len(sys.argv) > 2 else 256
gains = [1.0, 1.03, 1.06, 1.09, 1.12]
sampler = SynthSampler(cfg.synth, split, 7, 32, "cpu")
res = {k: {"A": [], "B": [], "Bbig": [], "Abig": []} for k in gains}
floorB, floorA = [], []
t0 = time.time()
with torch.no_grad():
    for i in range(npairs // 32):
        p = sampler.pairs(i); s, t = p.source, p.target
        op = ~t.closed
        f = model.encode(s.image)
        At = A(t.image); Bt = B(t.image)
        floorB.append(angular_error_deg(Bt.gaze, t.gaze)[op])
        big = ((t.gaze - s.gaze).norm(dim=1) > 0.35)[op]
        for k in gains:
            ge = f.gaze_pl + k * (t.gaze - f.gaze_pl)
            out = model.decode(model.redirect(f, ge, t.head), s.image).strip_out
            ea = angular_error_deg(A(out).gaze, At.gaze)[op]; eb = angular_error_deg(B(out).gaze, t.gaze)[op]
            res[k]["A"].append(ea); res[k]["B"].append(eb); res[k]["Abig"].append(ea[big]); res[k]["Bbig"].append(eb[big])
print(split, npairs, "floor B open", float(torch.cat(floorB).mean()), f"{time.time()-t0:.0f}s")
for k in gains:
    r = {n: float(torch.cat(v).mean()) for n, v in res[k].items()}
    print(k, {n: round(v, 3) for n, v in r.items()})
