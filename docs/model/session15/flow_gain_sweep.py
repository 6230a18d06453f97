"""One-off (session 15): the warp alone, scaled by a gain k, read by the iris meter, judge B and PSNR.

    PYTHONPATH=. python docs/model/session15/flow_gain_sweep.py SPLIT PAIRS [GAINS]

Same-head pairs (``pair_same_head``: a corrector moves only the gaze) of SPLIT, sampler seed 0. The shipped
redirector runs as the corrector runs it (target gaze, strength 1), and the output is the source warped by
k x its flow alone (what the corrector pastes at ``residual_gain = 0``). Per gain: the iris meter's gaze error
(pairs whose source and target eyes are open; with and without spectacles), the slope of the meter's pupil move
on the true one, judge B's gaze error (open eyes), and the PSNR against the true target render.
"""

import sys
import time
from dataclasses import replace

import torch

from engine.data.synth import Split, SynthSampler
from engine.eval.iris import follow_points, gaze_from_pupils
from engine.eval.metrics import psnr
from engine.model.warp import warp
from engine.strip import angular_error_deg
from engine.train.checkpoint import load_redirector
from engine.train.estimator import load_estimator

torch.set_num_threads(2)
split, pairs = Split[sys.argv[1]], int(sys.argv[2])
gains = [float(g) for g in sys.argv[3].split(",")] if len(sys.argv) > 3 else [1.0, 1.25, 1.5, 1.75, 2.0]
model, cfg, _ = load_redirector("engine/weights/redirector.pt")
model.eval()
judge = load_estimator("engine/weights/estimator_b.pt")
synth = replace(cfg.synth, pair_same_head=True)
sampler = SynthSampler(synth, split, 0, 32, "cpu")
geo = synth.geometry
rows: dict[str, list[torch.Tensor]] = {}


def add(key: str, value: torch.Tensor) -> None:
    rows.setdefault(key, []).append(value.detach().double().reshape(len(value), -1))


start = time.time()
with torch.no_grad():
    for i in range(pairs // 32):
        batch, rs, rt = sampler.render_pairs(i)
        s, t = batch.source, batch.target
        app = sampler.renderer.appearance(s.subject)
        out = model(s.image, t.gaze, torch.ones(len(s)))
        add("open", ~(s.closed | t.closed))
        add("glasses", rs.glasses)
        add("true_move", rt.pupil_px - rs.pupil_px)
        add("judge_floor", angular_error_deg(judge(t.image).gaze, t.gaze))
        add("full_judge", angular_error_deg(judge(out.strip_out).gaze, t.gaze))
        add("full_psnr", psnr(out.strip_out, t.image))
        for k in gains:
            flow = out.flow * k
            followed = follow_points(flow, rs.pupil_px)
            gaze = gaze_from_pupils(app, rt.scene, geo, followed.points)
            image = warp(s.image, flow, (geo.height, geo.width))
            add(f"{k}_meter", angular_error_deg(gaze, t.gaze))
            add(f"{k}_move", followed.points - rs.pupil_px)
            add(f"{k}_miss", followed.miss_px.amax(1))
            add(f"{k}_judge", angular_error_deg(judge(image).gaze, t.gaze))
            add(f"{k}_psnr", psnr(image, t.image))
r = {key: torch.cat(v) for key, v in rows.items()}
op = r["open"][:, 0].bool()
gl = r["glasses"][:, 0].bool()
true_move = r["true_move"]
print(
    f"{split} same-head pairs {len(op)}, open {int(op.sum())}, open without spectacles {int((op & ~gl).sum())} "
    f"({time.time() - start:.0f} s)"
)
print(
    f"judge B floor (open) {r['judge_floor'][op].mean():.3f}; full output: judge {r['full_judge'][op].mean():.3f}, "
    f"PSNR {r['full_psnr'].mean():.2f}"
)
print(
    "gain | meter open | open, no spectacles | open, spectacles | pupil move / true move | judge open | PSNR | "
    "miss>0.05px"
)
for k in gains:
    m = r[f"{k}_meter"][:, 0]
    mv = r[f"{k}_move"][op]
    slope = float((mv * true_move[op]).sum() / true_move[op].square().sum())
    print(
        f"{k:.2f} | {m[op].mean():.3f} | {m[op & ~gl].mean():.3f} | {m[op & gl].mean():.3f} | {slope:.3f} | "
        f"{r[f'{k}_judge'][op].mean():.3f} | {r[f'{k}_psnr'].mean():.2f} | {int((r[f'{k}_miss'] > 0.05).sum())}"
    )
