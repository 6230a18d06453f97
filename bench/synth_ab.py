"""The compiled CPU renderer of an earlier commit against this checkout's, in alternating processes.

    python bench/synth_ab.py --base 6341184 [--rounds 3] [--batches 10] [--json docs/bench/synth_ab.json]

The base commit is checked out into a temporary git worktree. Each round runs one process of the base and then
one of this checkout; each process builds a compiled sampler (batch 256 pairs), renders 2 untimed batches
(compilation) and then ``--batches`` timed ones, and reports its median and best strips per second and its median
CPU seconds per batch. Alternating processes see the same drifts of the machine's load, so compare within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# run in the child process: the sampler of whichever tree is first on PYTHONPATH
_CHILD = """
import json, statistics, sys, time
import engine
from engine.data.synth.sampler import SynthConfig, SynthSampler
n = int(sys.argv[1])
sampler = SynthSampler(SynthConfig(), seed=0, batch_size=256, compiled=True)
sampler.pairs(0)
sampler.pairs(1)
wall, cpu = [], []
for i in range(n):
    t, c = time.perf_counter(), time.process_time()
    sampler.pairs(2 + i)
    wall.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
print(json.dumps({
    "engine": engine.__file__,
    "strips_per_second_median": round(512 / statistics.median(wall), 1),
    "strips_per_second_best": round(512 / min(wall), 1),
    "cpu_seconds_per_batch_median": round(statistics.median(cpu), 3),
}))
"""


def _run(tree: Path, batches: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(batches)], env=env, cwd=tree, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["engine"].startswith(str(tree)):
        raise RuntimeError(f"the child imported {result['engine']}, not the tree {tree}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=10, help="timed batches per process")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True)
        try:
            for i in range(args.rounds):
                rounds.append({"base": _run(base, args.batches), "head": _run(ROOT, args.batches)})
                print(f"round {i + 1}: {json.dumps(rounds[-1])}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=True)
    result = {
        "command": f"python bench/synth_ab.py --base {args.base} --rounds {args.rounds} --batches {args.batches}",
        "base": args.base,
        "head": head.stdout.strip(),
        "rounds": [
            {side: {k: v for k, v in r[side].items() if k != "engine"} for side in ("base", "head")} for r in rounds
        ],
        "ratio_median_per_round": [
            round(r["head"]["strips_per_second_median"] / r["base"]["strips_per_second_median"], 2) for r in rounds
        ],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
