"""One-off: closed-loop refinement with the model's own encoder; judged by B, by A (vs A's reading of the target) and PSNR."""
import sys, time, torch
from engine.data.synth import Split, SynthSampler
from engine.train.estimator import load_estimator
from engine.train.checkpoint import load_redirector
from engine.strip import angular_error_deg
from engine.eval.metrics import psnr
torch.set_num_threads(2)
model, cfg, _ = load_redirector("engine/weights/redirector.pt")
B = load_estimator("engine/weights/estimator_b.pt"); A = load_estimator("engine/weights/estimator_a.pt")
variants = [("l0", 0.0, 1), ("l.25", 0.25, 1), ("l.5", 0.5, 1), ("l.75", 0.75, 1), ("l.5x2", 0.5, 2), ("l.5x3", 0.5, 3)]
split = Split[sys.argv[2]] if len(sys.argv) > 2 else Split.VAL
sampler = SynthSampler(cfg.synth, split, 7, 32, "cpu")
res = {v[0]: {"B": [], "A": [], "psnr": [], "Bhead": [], "Ball": []} for v in variants}
t0 = time.time()
with torch.no_grad():
    for i in range(int(sys.argv[1]) // 32):
        p = sampler.pairs(i); s, t = p.source, p.target
        op = ~(t.closed | s.closed)
        f = model.encode(s.image)
        At = A(t.image).gaze
        for name, lam, steps in variants:
            aim = t.gaze
            out = model.decode(model.redirect(f, aim, t.head, calibrated=True), s.image).strip_out
            for _ in range(steps if lam else 0):
                e = model.encode(out).gaze_pl - t.gaze
                aim = aim - lam * e
                out = model.decode(model.redirect(f, aim, t.head, calibrated=True), s.image).strip_out
            rb = B(out)
            res[name]["B"].append(angular_error_deg(rb.gaze, t.gaze)[op])
            res[name]["Ball"].append(angular_error_deg(rb.gaze, t.gaze))
            res[name]["Bhead"].append(angular_error_deg(rb.head, t.head))
            res[name]["A"].append(angular_error_deg(A(out).gaze, At)[op])
            res[name]["psnr"].append(psnr(out, t.image))
print(split, time.time() - t0)
for k, v in res.items():
    print(k, {m: round(float(torch.cat(x).mean()), 3) for m, x in v.items()})
