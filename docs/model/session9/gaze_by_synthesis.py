"""One-off: analysis-by-synthesis gaze meter. For each pair, the gaze g whose true render of the target scene
(same subject, light, camera, noise; only the gaze changed) is closest (L2) to a given image.

    PYTHONPATH=. python docs/model/session9/gaze_by_synthesis.py PAIRS SPLIT SEED [VARIANTS]

VARIANTS (comma-separated, default nogain,l0,l.5): target (the true target render: the meter's own error),
nogain (the shipped model at gain one), l0 (with its move gain), l.5 (plus the closed-loop second pass),
mirror (l0 with the mirror ensemble of engine/model/mirror.py; added in session 10).
"""
import sys, time, torch
import engine.data.synth.sampler as S
from engine.data.synth import Split
from engine.train.estimator import load_estimator
from engine.train.checkpoint import load_redirector
from engine.strip import angular_error_deg
from engine.model.mirror import merge_mirrored_batch, with_mirrors
torch.set_num_threads(2)
_real_draw_pose = S.draw_pose
class Patch:
    calls = 0; override = None; captured = None
def patched(config, n, gen, dev):
    head, gaze = _real_draw_pose(config, n, gen, dev)
    Patch.calls += 1
    if Patch.calls % 2 == 0:  # the target's pose
        Patch.captured = gaze.clone()
        if Patch.override is not None:
            gaze = Patch.override
    return head, gaze
S.draw_pose = patched

model, cfg, _ = load_redirector("engine/weights/redirector.pt")
sampler = S.SynthSampler(cfg.synth, Split[sys.argv[2]], int(sys.argv[3]), 32, "cpu")

def render_target(index, gaze_orig):
    Patch.override = gaze_orig
    p = sampler.pairs(index)
    Patch.override = None
    return p.target.image

def fit(index, images, order, init_sorted, steps=(0.05, 0.017, 0.006)):
    """images B x 3 x H x W (sorted rows); returns the best gaze per row (sorted order)."""
    best = init_sorted.clone()
    for step in steps:
        offs = [(a * step, b * step) for a in range(-2, 3) for b in range(-2, 3)]
        errs, cands = [], []
        for da, db in offs:
            cand = best + torch.tensor([da, db])
            g_orig = torch.empty_like(cand); g_orig[order] = cand
            r = render_target(index, g_orig)
            errs.append((r - images).square().flatten(1).mean(1)); cands.append(cand)
        errs = torch.stack(errs); k = errs.argmin(0)
        best = torch.stack(cands)[k, torch.arange(len(k))]
    return best

known = {"target": None, "nogain": -1.0, "l0": 0.0, "l.5": 0.5, "mirror": "mirror"}
lams = [(n, known[n]) for n in (sys.argv[4] if len(sys.argv) > 4 else "nogain,l0,l.5").split(",")]
res = {n: [] for n, _ in lams}; resB = {n: [] for n, _ in lams}
B = load_estimator("engine/weights/estimator_b.pt")
t0 = time.time()
with torch.no_grad():
    for i in range(int(sys.argv[1]) // 32):
        Patch.calls = 0
        p = sampler.pairs(i); s, t = p.source, p.target
        orig = Patch.captured
        order = torch.cdist(t.gaze, orig).argmin(1)  # sorted row -> original row
        assert torch.allclose(orig[order], t.gaze)
        op = ~(t.closed | s.closed)
        f = model.encode(s.image)
        for name, lam in lams:
            if lam is None:
                img = t.image
            elif lam == "mirror":
                x2, g2, h2 = with_mirrors(s.image, t.gaze, t.head)
                d2 = model.decode(model.redirect(model.encode(x2), g2, h2, calibrated=True), x2)
                img = merge_mirrored_batch(s.image, d2).strip_out
            else:
                aim = t.gaze
                img = model.decode(model.redirect(f, aim, t.head, calibrated=lam >= 0), s.image).strip_out
                if lam > 0:
                    aim = aim - lam * (model.encode(img).gaze_pl - t.gaze)
                    img = model.decode(model.redirect(f, aim, t.head, calibrated=True), s.image).strip_out
            g = fit(i, img, order, t.gaze)
            res[name].append(angular_error_deg(g, t.gaze)[op]); resB[name].append(angular_error_deg(B(img).gaze, t.gaze)[op])
        print(i, time.time() - t0, {n: round(float(torch.cat(v).mean()), 3) for n, v in res.items()}, flush=True)
print({n: round(float(torch.cat(v).mean()), 3) for n, v in resB.items()}, "judge B")
