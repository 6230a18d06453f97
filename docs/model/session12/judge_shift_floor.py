"""One-off (session 12): does reading each strip at a few small shifts (besides the mirror) lower the judge floor?

    PYTHONPATH=. python docs/model/session12/judge_shift_floor.py engine/weights/estimator_b.pt VAL 512 2

Reads the target renders of PAIRS pairs of SPLIT (sampler seed 0, batches of 32) with: the judge as is; the judge
mirror-averaged; and the mirror-averaged judge over the strip translated by (+-S, 0) and (0, +-S) pixels as well
(bilinear, border padding), 5 positions x 2 mirrors. The renderer's sensor jitter already moves the eyes by more
than that, so a translated strip is still a valid strip; if the judge's errors at the shifts are partly
independent, averaging lowers the floor. Prints mean gaze error (all and open-eyed strips) and head error.
"""

import sys
import time

import torch
import torch.nn.functional as F

from engine.data.synth import Split, SynthConfig, SynthSampler
from engine.strip import angular_error_deg
from engine.train.estimator import MirrorAveraged, load_estimator

torch.set_num_threads(2)
estimator = load_estimator(sys.argv[1])
estimator.eval()
averaged = MirrorAveraged(estimator)
split, pairs, shift = Split[sys.argv[2]], int(sys.argv[3]), float(sys.argv[4])


def translated(strip: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """``strip`` moved by (dx, dy) pixels, edges repeated."""
    n, _, h, w = strip.shape
    theta = torch.tensor([[1.0, 0.0, -2 * dx / w], [0.0, 1.0, -2 * dy / h]]).expand(n, 2, 3)
    grid = F.affine_grid(theta, list(strip.shape), align_corners=False)
    return F.grid_sample(strip, grid, mode="bilinear", padding_mode="border", align_corners=False)


offsets = [(0.0, 0.0), (shift, 0.0), (-shift, 0.0), (0.0, shift), (0.0, -shift)]
sampler = SynthSampler(SynthConfig(), split, 0, 32, torch.device("cpu"))
rows: dict[str, list[torch.Tensor]] = {}
start = time.time()
with torch.no_grad():
    for i in range(pairs // 32):
        target = sampler.pairs(i).target
        plain = estimator(target.image)
        mirrored = averaged(target.image)
        reads = [averaged(translated(target.image, dx, dy)) for dx, dy in offsets]
        gaze = torch.stack([r.gaze for r in reads]).mean(0)
        head = torch.stack([r.head for r in reads]).mean(0)
        for name, g, hd in (
            ("plain", plain.gaze, plain.head),
            ("mirror", mirrored.gaze, mirrored.head),
            ("mirror+shifts", gaze, head),
        ):
            rows.setdefault(f"gaze {name}", []).append(angular_error_deg(g, target.gaze))
            rows.setdefault(f"head {name}", []).append(angular_error_deg(hd, target.head))
        rows.setdefault("open", []).append(~target.closed)
is_open = torch.cat(rows.pop("open"))
print(f"{pairs} {split.name} target renders, {int(is_open.sum())} open, shift {shift} px ({time.time() - start:.0f} s)")
for key, values in rows.items():
    e = torch.cat(values)
    extra = f", open {e[is_open].mean():.3f}" if key.startswith("gaze") else ""
    print(f"{key}: all {e.mean():.3f}{extra}")
