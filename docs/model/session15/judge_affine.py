"""One-off (session 15): does an affine calibration of the judge's readings lower its floor?

    PYTHONPATH=. python docs/model/session15/judge_affine.py engine/weights/estimator_b.pt TRAINPAIRS VALPAIRS

Reads TRAINPAIRS training pairs (sampler seed 101, as `mirada calibrate`) and VALPAIRS validation pairs (seed 0,
the renders of session 12's judge_mirror_floor.py) with the judge as is and mirror-averaged. On the training
readings it fits, by least squares, the true angles from the readings: (a) an offset per angle (what the shipped
calibration does), (b) a scale and offset per angle, (c) gaze from the gaze reading and head from the head reading
(2 x 2 + offset each), (d) all four angles from all four readings (4 x 4 + offset). Gaze rows are fitted on open
eyes only, head rows on all strips. Prints the validation floors under each.
"""

import sys
import time

import torch

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.strip import angular_error_deg
from engine.train.estimator import MirrorAveraged, load_estimator

torch.set_num_threads(2)
estimator = load_estimator(sys.argv[1])
estimator.eval()
averaged = MirrorAveraged(estimator)


def read(split: Split, seed: int, pairs: int) -> dict[str, torch.Tensor]:
    sampler = SynthSampler(SynthConfig(), split, seed, 32, torch.device("cpu"))
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("plain", "mirror", "truth", "open")}
    with torch.no_grad():
        for i in range(pairs // 32):
            batch = sampler.pairs(i)
            for strips in (batch.source, batch.target):
                p, m = estimator(strips.image), averaged(strips.image)
                out["plain"].append(torch.cat((p.gaze, p.head), 1).double())
                out["mirror"].append(torch.cat((m.gaze, m.head), 1).double())
                out["truth"].append(torch.cat((strips.gaze, strips.head), 1).double())
                out["open"].append(~strips.closed)
    return {k: torch.cat(v) for k, v in out.items()}


def design(x: torch.Tensor, cols: list[int]) -> torch.Tensor:
    return torch.cat((x[:, cols], torch.ones(len(x), 1, dtype=x.dtype)), 1)


def fit(kind: str, x: torch.Tensor, y: torch.Tensor, op: torch.Tensor):  # type: ignore[no-untyped-def]
    """Returns a function readings -> corrected readings, fitted on (x, y)."""
    coefs = []
    for c in range(4):
        rows = op if c < 2 else torch.ones_like(op)
        if kind == "offset":
            cols: list[int] = []
        elif kind == "scale":
            cols = [c]
        elif kind == "block":
            cols = [0, 1] if c < 2 else [2, 3]
        else:
            cols = [0, 1, 2, 3]
        a = design(x[rows], cols)
        # the offset fit is of truth minus reading (it predicted a constant in the run logged next to this file)
        base = x[rows, c : c + 1] if kind == "offset" else 0.0
        coef = torch.linalg.lstsq(a, y[rows, c : c + 1] - base).solution.squeeze(1)
        coefs.append((cols, coef))
        print(f"  {kind} angle {c}: cols {cols} coef {[round(float(v), 4) for v in coef]}")

    def apply(z: torch.Tensor) -> torch.Tensor:
        fitted = [design(z, cols) @ coef for cols, coef in coefs]
        if kind == "offset":
            fitted = [z[:, c] + f for c, f in enumerate(fitted)]
        return torch.stack(fitted, 1)

    return apply


def floors(z: torch.Tensor, d: dict[str, torch.Tensor]) -> str:
    g = angular_error_deg(z[:, :2], d["truth"][:, :2])
    h = angular_error_deg(z[:, 2:], d["truth"][:, 2:])
    return f"gaze all {g.mean():.3f} open {g[d['open']].mean():.3f} head {h.mean():.3f}"


start = time.time()
train = read(Split.TRAIN, 101, int(sys.argv[2]))
val = read(Split.VAL, 0, int(sys.argv[3]))
print(f"{sys.argv[1]} train strips {len(train['truth'])} val strips {len(val['truth'])} ({time.time() - start:.0f}s)")
for reader in ("plain", "mirror"):
    print(f"{reader}: as is, val {floors(val[reader], val)}; train {floors(train[reader], train)}")
    for kind in ("offset", "scale", "block", "full"):
        f = fit(kind, train[reader], train["truth"], train["open"])
        print(f"{reader} {kind}: val {floors(f(val[reader]), val)}; train {floors(f(train[reader]), train)}")
