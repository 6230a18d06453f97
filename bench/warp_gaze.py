"""How far does what the corrector pastes move the gaze? The redirector's warp alone, read without a network.

    python bench/warp_gaze.py [--checkpoint engine/weights/redirector.pt] [--pairs 1024] [--split TEST]
                              [--mirror] [--judge engine/weights/estimator_b.pt] [--json OUT]

The corrector pastes the network's warp field on the frame and, by default, not its colour residual
(``Settings.residual_gain = 0``), while ``mirada eval`` scores the network's full strip output (warp plus
residual). This script scores both on pairs whose target keeps the source's head pose
(``SynthConfig.pair_same_head``; the corrector moves only the gaze), with the network run as the corrector runs it
(target gaze, strength 1; ``--mirror``: the mirror ensemble):

- ``iris``: the gaze the warp shows, read by :mod:`engine.eval.iris` from where the flow puts the source's
  pupils (no network; exact on true renders); also the least-squares slope of that pupil move on the true one;
- ``judge``: the judge's gaze reading (mirror-averaged) of the full output, of the warp alone, and of the true
  target render (its floor);
- ``psnr``: of the full output and of the warp alone against the true target render.

Gaze errors are means over pairs whose source and target eyes are open, split by spectacles (the iris reading
ignores the lens's refraction) and by the size of the move.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from engine.data.synth import Split, SynthSampler
from engine.eval.iris import warp_gaze
from engine.eval.metrics import psnr
from engine.model.mirror import MirrorEnsemble
from engine.model.warp import warp
from engine.strip import angular_error_deg
from engine.train.checkpoint import load_redirector
from engine.train.estimator import MirrorAveraged, load_estimator

logger = logging.getLogger("bench.warp_gaze")

# A pupil solved worse than this (strip pixels) sits where the flow folds; such pairs are counted and left out.
MAX_MISS_PX = 0.05


def main() -> None:
    """Measure and print (and with ``--json`` write) the readings described in the module docstring."""
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
    net = MirrorEnsemble.from_redirector(model) if args.mirror else model
    net.eval()
    judge = MirrorAveraged(load_estimator(args.judge))
    synth = replace(train_config.synth, pair_same_head=True)
    sampler = SynthSampler(synth, Split[args.split], args.seed, args.batch, "cpu")
    geo = synth.geometry
    rows: dict[str, list[torch.Tensor]] = {}

    def add(key: str, value: torch.Tensor) -> None:
        rows.setdefault(key, []).append(value.detach().double().reshape(len(value), -1))

    start = time.time()
    with torch.no_grad(), tqdm(total=args.pairs, unit="pair", desc="warp gaze") as bar:
        for index in range(args.pairs // args.batch):
            batch, rendered_source, rendered_target = sampler.render_pairs(index)
            s, t = batch.source, batch.target
            out = net(s.image, t.gaze, torch.ones(len(s)))
            warped = warp(s.image, out.flow, (geo.height, geo.width))
            app = sampler.renderer.appearance(s.subject)
            iris = warp_gaze(app, rendered_target.scene, geo, rendered_source.pupil_px, out.flow)
            read = judge(torch.cat((out.strip_out, warped, t.image))).gaze.split(len(s))
            add("open", ~(s.closed | t.closed))
            add("glasses", rendered_source.glasses)
            add("moved_deg", angular_error_deg(s.gaze, t.gaze))
            add("true_move", rendered_target.pupil_px - rendered_source.pupil_px)
            add("iris_move", iris.pupils - rendered_source.pupil_px)
            add("miss", iris.miss_px)
            add("iris", angular_error_deg(iris.gaze, t.gaze))
            for name, reading in zip(("judge_full", "judge_warp", "judge_floor"), read, strict=True):
                add(name, angular_error_deg(reading, t.gaze))
            add("psnr_full", psnr(out.strip_out, t.image))
            add("psnr_warp", psnr(warped, t.image))
            bar.update(len(s))
    r = {key: torch.cat(value) for key, value in rows.items()}
    result = summarise(r, args, time.time() - start)
    for line in report(result):
        logger.info(line)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def summarise(r: dict[str, torch.Tensor], args: argparse.Namespace, seconds: float) -> dict[str, object]:
    """Means per subset (open eyes; with and without spectacles; moves above and up to 20°) of every reading."""
    opened = r["open"][:, 0].bool()
    solved = r["miss"][:, 0] <= MAX_MISS_PX
    glasses = r["glasses"][:, 0].bool()
    big = r["moved_deg"][:, 0] > 20.0
    subsets = {
        "open": opened & solved,
        "open, no spectacles": opened & solved & ~glasses,
        "open, spectacles": opened & solved & glasses,
        "open, moved more than 20 deg": opened & solved & big,
        "open, moved 20 deg or less": opened & solved & ~big,
    }
    readings = ("iris", "judge_full", "judge_warp", "judge_floor", "moved_deg")
    table = {
        name: {"pairs": int(rows.sum()), **{k: float(r[k][rows, 0].mean()) for k in readings}}
        for name, rows in subsets.items()
    }
    move, true = r["iris_move"][subsets["open"]], r["true_move"][subsets["open"]]
    return {
        "checkpoint": args.checkpoint,
        "judge": f"{args.judge} (mirror-averaged)",
        "mirror_ensemble": args.mirror,
        "split": args.split,
        "seed": args.seed,
        "pairs": len(opened),
        "unsolved_pairs": int((~solved).sum()),
        "seconds": round(seconds, 1),
        "pupil_move_slope": float((move * true).sum() / true.square().sum()),
        "psnr_full_db": float(r["psnr_full"].mean()),
        "psnr_warp_db": float(r["psnr_warp"].mean()),
        "gaze_error_deg": table,
    }


def report(result: dict[str, object]) -> list[str]:
    """The result as printable lines."""
    lines = [
        f"{result['checkpoint']} mirror={result['mirror_ensemble']} {result['split']} pairs {result['pairs']} "
        f"({result['unsolved_pairs']} with a pupil not solved, left out), {result['seconds']} s",
        f"warp moves the pupils {result['pupil_move_slope']:.3f} of the true move; PSNR full "
        f"{result['psnr_full_db']:.2f} dB, warp alone {result['psnr_warp_db']:.2f} dB",
        "subset | pairs | moved | iris (warp) | judge: full | judge: warp | judge floor",
    ]
    table = result["gaze_error_deg"]
    if not isinstance(table, dict):
        raise TypeError("gaze_error_deg must be a table")
    for name, row in table.items():
        lines.append(
            f"{name} | {row['pairs']} | {row['moved_deg']:.2f} | {row['iris']:.2f} | {row['judge_full']:.2f} | "
            f"{row['judge_warp']:.2f} | {row['judge_floor']:.2f}"
        )
    return lines


if __name__ == "__main__":
    main()
