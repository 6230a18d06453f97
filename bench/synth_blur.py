"""The camera's defocus blur on a CPU: shifted in-place sums (now) against grouped convolutions (before).

    python bench/synth_blur.py [--repeats 9]

Inputs are the sensor images of one 256-pair batch (510 images spread over the five render scales, random
radiance); both ways alternate in one process, with malloc keeping freed memory as the renderer has it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from engine.data.synth import camera
from engine.data.synth.memory import keep_freed_memory
from engine.data.synth.sampler import SynthConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    keep_freed_memory()
    config = SynthConfig()
    gen = torch.Generator().manual_seed(0)
    images = []
    for scale in config.render_scales:
        h, w = round(config.geometry.height * scale), round(config.geometry.width * scale)
        images.append((torch.rand(102, 3, h, w, generator=gen) * 0.3, torch.rand(102, generator=gen) * 1.1))
    r = camera._BLUR_RADIUS
    taps = torch.arange(-r, r + 1.0)

    def kernel(sigma: torch.Tensor) -> torch.Tensor:
        k = torch.exp(-(taps**2) / (2 * sigma.clamp_min(1e-3).view(-1, 1) ** 2))
        return k / k.sum(1, keepdim=True)

    ways = {
        "shifted_sums": lambda x, s: camera._gaussian_blur(x, s),
        "grouped_conv": lambda x, s: camera._grouped_conv(x, kernel(s)),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            for x, sigma in images:
                way(x, sigma)
            times[name].append(time.perf_counter() - start)
    result = {name: {"median_seconds": round(statistics.median(t), 4)} for name, t in times.items()}
    result["ratio_conv_over_shifted"] = round(
        statistics.median(times["grouped_conv"]) / statistics.median(times["shifted_sums"]), 2
    )
    print(json.dumps({"command": f"python bench/synth_blur.py --repeats {args.repeats}", **result}, indent=2))


if __name__ == "__main__":
    main()
