"""Eager versus compiled synthetic renderer, side by side in one process (strips per second).

    python bench/synth_renderer.py [--device cpu] [--batches 6] [--json docs/bench/synth_cpu.json]

Both samplers draw the same batches (same seed). The compiled one is warmed up first (that call compiles, about a
minute on 2 cores, and is not timed); then eager and compiled batches alternate, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from engine.data.synth.sampler import SynthConfig, SynthSampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256, help="pairs per batch (2 strips each)")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per variant")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    dev = torch.device(args.device)
    samplers = {
        name: SynthSampler(SynthConfig(), seed=0, batch_size=args.batch_size, device=dev, compiled=compiled)
        for name, compiled in (("eager", False), ("compiled", True))
    }
    start = time.perf_counter()
    for sampler in samplers.values():
        sampler.pairs(0)
    warmup = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in samplers}
    for i in range(args.batches):
        for name, sampler in samplers.items():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            sampler.pairs(1 + i)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times[name].append(time.perf_counter() - t)
    strips = 2 * args.batch_size
    result = {
        "command": (
            f"python bench/synth_renderer.py --device {args.device} --batch-size {args.batch_size}"
            f" --batches {args.batches}"
        ),
        "batch_pairs": args.batch_size,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "warmup_seconds_incl_compile": round(warmup, 1),
        "compiled_fell_back_to_eager": not samplers["compiled"].renderer.compiled,
    }
    for name, ts in times.items():
        result[name] = {
            "median_batch_seconds": round(statistics.median(ts), 3),
            "strips_per_second_median": round(strips / statistics.median(ts), 1),
            "strips_per_second_best": round(strips / min(ts), 1),
        }
    result["speedup_median"] = round(statistics.median(times["eager"]) / statistics.median(times["compiled"]), 2)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
