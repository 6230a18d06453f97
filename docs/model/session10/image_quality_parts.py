"""One-off (session 10): which part of the mirror ensemble moves PSNR and SSIM against the true target render.

    PYTHONPATH=. python docs/model/session10/image_quality_parts.py

On 128 validation pairs (seed 0) of the shipped model: the single pass ("plain"), the merged flow with the
plain colour correction, the plain flow with the merged correction, both merged (the ensemble), the warps
alone (what the runtime pastes by default), and the mirrored pass alone.
"""
import torch

from engine.data.synth import Split, SynthSampler
from engine.eval.metrics import psnr, ssim
from engine.model.mirror import mirror_flow, mirror_strips, split_halves, with_mirrors
from engine.model.warp import warp
from engine.train.checkpoint import load_redirector

model, cfg, _ = load_redirector("engine/weights/redirector.pt"); model.eval()
sampler = SynthSampler(cfg.synth, Split.VAL, 0, 32, torch.device("cpu"))
acc = {}
with torch.no_grad():
    for i in range(4):
        p = sampler.pairs(i); s, t = p.source, p.target
        x2, g2, h2 = with_mirrors(s.image, t.gaze, t.head)
        d = model.decode(model.redirect(model.encode(x2), g2, h2, calibrated=True), x2)
        (f0, f1), (r0, r1), (m0, m1) = split_halves(d.flow), split_halves(d.residual), split_halves(d.mask)
        c0, c1 = m0 * r0, mirror_strips(m1 * r1)
        fa = 0.5 * (f0 + mirror_flow(f1)); ca = 0.5 * (c0 + c1)
        W = lambda f: warp(s.image, f, (64, 256))
        v = {"plain": W(f0) + c0, "avgflow_plaincorr": W(fa) + c0, "plainflow_avgcorr": W(f0) + ca, "both": W(fa) + ca,
             "warp_only_plain": W(f0), "warp_only_avg": W(fa), "mirror_only": W(mirror_flow(f1)) + c1}
        for k, img in v.items():
            img = img.clamp(0, 1)
            acc.setdefault(k, []).append(torch.stack((ssim(img, t.image), psnr(img, t.image))))
for k, l in acc.items():
    a = torch.cat(l, 1).mean(1); print(f"{k:20s} ssim {a[0]:.4f} psnr {a[1]:.3f}")
