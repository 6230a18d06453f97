"""How far does what the corrector pastes move the gaze? The redirector's warp alone, read without a network.

    python bench/warp_gaze.py [--checkpoint engine/weights/redirector.pt] [--pairs 1024] [--split TEST]
                              [--mirror] [--judge engine/weights/estimator_b.pt] [--json OUT]

The corrector pastes the network's warp field on the frame and, by default, not its colour residual
(``Settings.residual_gain = 0``), while ``mirada eval`` scores the network's full strip output. This scores both
(:func:`engine.eval.warp_eval.evaluate_warp`, whose docstring says what each reading is), the judge read
mirror-averaged, and prints and writes the table (``--mirror``: the redirector's mirror ensemble).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from engine.data.synth import Split
from engine.eval.warp_eval import WarpEvalConfig, evaluate_warp, warp_table
from engine.train.checkpoint import load_redirector
from engine.train.estimator import MirrorAveraged, load_estimator

logger = logging.getLogger("bench.warp_gaze")


def main() -> None:
    """Measure, print and (with ``--json``) write the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="engine/weights/redirector.pt")
    parser.add_argument("--judge", default="engine/weights/estimator_b.pt")
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--split", default="TEST", choices=[s.name for s in Split])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirror", action="store_true", help="run the mirror ensemble")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    model, train_config, _ = load_redirector(args.checkpoint)
    judge = MirrorAveraged(load_estimator(args.judge))
    config = WarpEvalConfig(args.pairs, args.batch, Split[args.split], args.seed, args.mirror)
    start = time.time()
    result = {
        "checkpoint": args.checkpoint,
        "judge": f"{args.judge} (mirror-averaged)",
        **evaluate_warp(model, judge, train_config.synth, config),
        "seconds": round(time.time() - start, 1),
    }
    logger.info("%s, %s, %.1f s", result["checkpoint"], result["config"], result["seconds"])
    logger.info("%s", warp_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
