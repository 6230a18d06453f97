"""One-off: error = a*target + b*source (+c) per angle, for readings of outputs by A, B, encoder; and of renders."""
import sys, torch
from engine.data.synth import Split, SynthSampler
from engine.train.estimator import load_estimator
from engine.train.checkpoint import load_redirector
torch.set_num_threads(2)
model, cfg, _ = load_redirector("engine/weights/redirector.pt")
A = load_estimator("engine/weights/estimator_a.pt"); B = load_estimator("engine/weights/estimator_b.pt")
sampler = SynthSampler(cfg.synth, Split.VAL, 9, 32, "cpu")
rows = {k: [] for k in ("A_out1", "B_out1", "E_out1", "A_outg", "B_outg", "E_outg", "A_tgt", "B_tgt", "E_tgt")}
T, Sx = [], []
with torch.no_grad():
    for i in range(int(sys.argv[1]) // 32):
        p = sampler.pairs(i); s, t = p.source, p.target
        op = ~(t.closed | s.closed)
        f = model.encode(s.image)
        model.get_buffer("move_gain").fill_(1.0)
        o1 = model.decode(model.redirect(f, t.gaze, t.head, calibrated=True), s.image).strip_out
        model.get_buffer("move_gain")[:2] = torch.tensor([1.0462, 1.0497])
        og = model.decode(model.redirect(f, t.gaze, t.head, calibrated=True), s.image).strip_out
        for name, img in (("out1", o1), ("outg", og), ("tgt", t.image)):
            rows["A_" + name].append((A(img).gaze - t.gaze)[op]); rows["B_" + name].append((B(img).gaze - t.gaze)[op])
            rows["E_" + name].append((model.encode(img).gaze_pl - t.gaze)[op])
        T.append(t.gaze[op]); Sx.append(s.gaze[op])
T, Sx = torch.cat(T).double(), torch.cat(Sx).double()
for k, v in rows.items():
    e = torch.cat(v).double()
    out = []
    for c in range(2):
        X = torch.stack((T[:, c], Sx[:, c], torch.ones_like(T[:, c])), 1)
        coef = torch.linalg.lstsq(X, e[:, c:c+1]).solution.squeeze(1)
        out.append("a=%+.3f b=%+.3f" % (coef[0], coef[1]))
    print(k, " | ".join(out))
