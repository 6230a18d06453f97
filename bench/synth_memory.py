"""The compiled CPU renderer with malloc keeping freed memory (now) or with glibc's default (before).

    python bench/synth_memory.py [--rounds 3] [--batches 8] [--json docs/bench/synth_memory.json]

The setting is process state, so each variant runs in its own process, and the two alternate ``--rounds`` times
(the machine's load drifts). Each process: a compiled sampler at batch 256 pairs, two untimed batches
(compilation), then ``--batches`` timed ones; it reports the median and best strips per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("kept", "default")


def _child(variant: str, batches: int) -> None:
    import engine.data.synth.sampler as sampler_module
    from engine.data.synth.sampler import SynthConfig, SynthSampler

    if variant == "default":
        setattr(sampler_module, "keep_freed_memory", lambda: False)  # noqa: B010 (patch the module global)
    sampler = SynthSampler(SynthConfig(), seed=0, batch_size=256, compiled=True)
    sampler.pairs(0)
    sampler.pairs(1)
    times = []
    for i in range(batches):
        start = time.perf_counter()
        sampler.pairs(2 + i)
        times.append(time.perf_counter() - start)
    print(json.dumps({"median": 512 / statistics.median(times), "best": 512 / min(times)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.batches)
        return
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, "--child", variant, "--batches", str(args.batches)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    result = {
        "command": f"python bench/synth_memory.py --rounds {args.rounds} --batches {args.batches}",
        "strips_per_second_median_per_round": {v: [round(r["median"]) for r in rs] for v, rs in runs.items()},
        "strips_per_second_best_per_round": {v: [round(r["best"]) for r in rs] for v, rs in runs.items()},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
