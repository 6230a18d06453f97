"""One-off (session 12): how much of the judge's reading of a redirected strip is the judge's own noise.

    PYTHONPATH=. python docs/model/session12/judge_noise.py PAIRS SPLIT   # e.g. 1024 TEST (mirada eval's pairs)

The judge B errs on the true target renders too (its floor). If its error on an image is independent of how far
that image's gaze is from the target, and as large on outputs as on renders, then mean squares add:
E|e_out|^2 = E|r|^2 + E|e_render|^2, where r is the image's own gaze error. So
r_rms = sqrt(mean e_out^2 - mean e_floor^2) estimates the RMS gaze error of the images themselves, with the judge's
noise taken out (95 % bootstrap interval over pairs). Open-eyed targets only, as mirada eval's open figures.

Checked on images of known error: the target scene rendered again with the gaze moved by exactly 1 or 2 degrees in
a random direction (the renderer's own image, so the judge's noise on it is what it is on renders). On those it
also measures the judge's sensitivity: how much of the known move its reading follows. Then applied
to the shipped redirector, single pass and mirror ensemble, read by the judge and by the mirror-averaged judge.
The assumption does not hold exactly for outputs (the judge may err more on a blurrier output, which biases r_rms
up, or its error may correlate with the output's, either way): read r_rms as an estimate, not a measurement.
"""

import math
import sys
import time

import torch

import engine.data.synth.sampler as S
from engine.data.synth import Split
from engine.eval.metrics import SourceRedirection
from engine.strip import angular_error_deg
from engine.train.checkpoint import load_redirector
from engine.train.estimator import MirrorAveraged, load_estimator

torch.set_num_threads(2)
_real_draw_pose = S.draw_pose


class Patch:
    calls = 0
    override: torch.Tensor | None = None
    captured: torch.Tensor | None = None


def patched(config, n, gen, dev):  # type: ignore[no-untyped-def]
    head, gaze = _real_draw_pose(config, n, gen, dev)
    Patch.calls += 1
    if Patch.calls % 2 == 0:  # the target's pose (source first, then target)
        Patch.captured = gaze.clone()
        if Patch.override is not None:
            gaze = Patch.override
    return head, gaze


S.draw_pose = patched
pairs, split = int(sys.argv[1]), Split[sys.argv[2]]
model, cfg, _ = load_redirector("engine/weights/redirector.pt")
model.eval()
sampler = S.SynthSampler(cfg.synth, split, 0, 32, "cpu")
plain = load_estimator("engine/weights/estimator_b.pt")
judges = {"judge B": plain, "judge B mirror-averaged": MirrorAveraged(plain)}
gen = torch.Generator().manual_seed(12)
rows: dict[str, list[torch.Tensor]] = {}


def add(key: str, value: torch.Tensor) -> None:
    rows.setdefault(key, []).append(value)


t0 = time.time()
with torch.no_grad():
    for i in range(pairs // 32):
        Patch.calls, Patch.override = 0, None
        p = sampler.pairs(i)
        s, t = p.source, p.target
        orig = Patch.captured
        order = torch.cdist(t.gaze, orig).argmin(1)  # sorted row -> original row
        if not torch.allclose(orig[order], t.gaze):
            raise RuntimeError("could not match the sampler's rows")
        images = {"true target render": t.image}
        labels = {"true target render": t.gaze}
        for deg in (1.0, 2.0):
            theta = torch.rand(len(t.gaze), generator=gen) * 2 * math.pi
            moved = t.gaze + math.radians(deg) * torch.stack((torch.sin(theta), torch.cos(theta)), 1)
            g_orig = torch.empty_like(moved)
            g_orig[order] = moved
            Patch.calls, Patch.override = 0, g_orig
            images[f"render {deg:.0f} deg off"] = sampler.pairs(i).target.image
            Patch.override = None
            labels[f"render {deg:.0f} deg off"] = moved
        images["shipped, single pass"] = SourceRedirection(model, s.image).to(t.gaze, t.head)
        images["shipped, mirror ensemble"] = SourceRedirection(model, s.image, True).to(t.gaze, t.head)
        is_open = ~t.closed
        add("open", is_open)
        reads_of_target: dict[str, torch.Tensor] = {}
        for name, img in images.items():
            if name in labels:  # the image's own error, known exactly
                add(f"true|{name}", angular_error_deg(labels[name].double(), t.gaze.double()))
            for jname, judge in judges.items():
                read = judge(img).gaze
                add(f"{jname}|{name}", angular_error_deg(read, t.gaze))
                if name == "true target render":
                    reads_of_target[jname] = read
                elif name in labels:  # how much of a known move the judge sees: its reading's change along the move
                    move = labels[name] - t.gaze
                    seen = ((read - reads_of_target[jname]) * move).sum(1) / move.square().sum(1)
                    add(f"{jname}|sensitivity {name}", seen)
        print(f"batch {i + 1}/{pairs // 32} {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

is_open = torch.cat(rows.pop("open"))
data = {k: torch.cat(v)[is_open].double() for k, v in rows.items()}
n = int(is_open.sum())
boot = torch.randint(0, n, (2000, n), generator=torch.Generator().manual_seed(0))


def r_rms(e: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    return (e.square().mean(-1) - floor.square().mean(-1)).clamp(min=0).sqrt()


print(f"{pairs} {split.name} pairs, {n} with open-eyed targets; {time.time() - t0:.0f} s on the CPU\n")
HEADER = ["image", "true RMS error (°)", "judge", "mean judged error (°)", "RMS judged error (°)", "r_rms (°)", "95 %"]
print("| " + " | ".join(HEADER) + " |")
print("|---|---|---|---|---|---|---|")
for jname in judges:
    floor = data[f"{jname}|true target render"]
    for key, e in data.items():
        who, name = key.split("|")
        if who != jname or name.startswith("sensitivity"):
            continue
        true = data.get(f"true|{name}")
        true_rms = "" if true is None else f"{float(true.square().mean().sqrt()):.2f}"
        est = float(r_rms(e, floor))
        lo, hi = torch.quantile(r_rms(e[boot], floor[boot]), torch.tensor([0.025, 0.975], dtype=torch.float64))
        print(
            f"| {name} | {true_rms} | {jname} | {float(e.mean()):.2f} | {float(e.square().mean().sqrt()):.2f} "
            f"| {est:.2f} | {float(lo):.2f}-{float(hi):.2f} |"
        )

print("\nThe judge's reading of a known move, as a fraction of it (1: it sees all of it), mean and 95 % interval:\n")
for key, e in data.items():
    if "|sensitivity" in key:
        lo, hi = torch.quantile(e[boot].mean(-1), torch.tensor([0.025, 0.975], dtype=torch.float64))
        print(f"- {key.replace('|sensitivity', ',')}: {float(e.mean()):.2f} ({float(lo):.2f}-{float(hi):.2f})")
