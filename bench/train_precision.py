"""fp32 against bf16 autocast training, side by side: seconds per step and the loss after the same steps.

    python bench/train_precision.py [--device cpu] [--steps 12] [--estimator-batch 32] [--redirector-batch 16]
                                    [--json docs/model/session14/train_precision_cpu.json]

Two jobs, each run once per precision from the same weights on the same pre-rendered batches (rendering is left
out of the timing): estimator B fine-tuned from ``engine/weights/estimator_b.pt`` at 1e-4 (what a GPU session
would run next), and the redirector trained one :class:`~engine.train.trainer.Trainer` step at a time from the
shipped ``engine/weights/redirector.pt`` with its own training config. The first step of each run is a warm-up
and is not timed; the ratio is fp32 median over bf16 median, measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from engine.data.batch import PairBatch, StripBatch
from engine.data.synth import Split, SynthSampler
from engine.train.checkpoint import load_redirector
from engine.train.config import TrainConfig
from engine.train.estimator import estimator_loss, load_estimator
from engine.train.precision import PRECISIONS, autocast
from engine.train.trainer import Trainer

ESTIMATOR = Path("engine/weights/estimator_b.pt")
REDIRECTOR = Path("engine/weights/redirector.pt")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _summary(times: list[float], losses: list[float]) -> dict[str, Any]:
    return {
        "median_s_per_step": statistics.median(times[1:]) if len(times) > 1 else times[0],
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "mean_loss_last_quarter": statistics.fmean(losses[-max(1, len(losses) // 4) :]),
        "losses": losses,
    }


def estimator_run(batches: list[StripBatch], precision: str, device: torch.device) -> dict[str, Any]:
    """Fine-tune a fresh copy of the shipped judge B for ``len(batches)`` Adam steps at 1e-4."""
    model = load_estimator(ESTIMATOR, device, frozen=False)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    times, losses = [], []
    for strips in tqdm(batches, desc=f"estimator B {precision}", leave=False):
        _sync(device)
        start = time.perf_counter()
        with autocast(device, precision):
            loss = estimator_loss(model, strips)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        _sync(device)
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    return _summary(times, losses)


def redirector_run(
    batches: list[PairBatch], precision: str, device: torch.device, batch_size: int, config: TrainConfig
) -> dict[str, Any]:
    """Train the shipped redirector further with its own ``config`` for ``len(batches)`` Trainer steps."""
    config = replace(
        config,
        device=str(device),
        batch_size=batch_size,
        precision=precision,  # type: ignore[arg-type]
        init_weights=str(REDIRECTOR),
        cache=None,  # the shipped run read a pair cache on the GPU machine; the batches here are rendered
        log_dir="/tmp/mirada_train_precision",
    )
    trainer = Trainer(config, progress=False)
    times, losses = [], []
    for batch in tqdm(batches, desc=f"redirector {precision}", leave=False):
        _sync(device)
        start = time.perf_counter()
        terms = trainer.train_step(batch)
        _sync(device)
        times.append(time.perf_counter() - start)
        losses.append(float(terms["total"]))
    return _summary(times, losses)


def main() -> None:
    """Run both jobs at both precisions and print (and optionally save) the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=12, help="steps per run, the first one untimed")
    parser.add_argument("--estimator-batch", type=int, default=32, help="pairs per estimator step (2x strips)")
    parser.add_argument("--redirector-batch", type=int, default=16, help="pairs per redirector step")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = torch.device(args.device)
    _, config, _ = load_redirector(REDIRECTOR)

    estimator_sampler = SynthSampler(config.synth, Split.TRAIN, 14, args.estimator_batch, device)
    strips = [
        StripBatch.cat([(p := estimator_sampler.pairs(i)).source, p.target])
        for i in tqdm(range(args.steps), desc="render estimator batches", leave=False)
    ]
    redirector_sampler = SynthSampler(config.synth, Split.TRAIN, 14, args.redirector_batch, device)
    pairs = [redirector_sampler.pairs(i) for i in tqdm(range(args.steps), desc="render pairs", leave=False)]

    report: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "estimator_batch_pairs": args.estimator_batch,
        "redirector_batch_pairs": args.redirector_batch,
    }
    for job in ("estimator_b", "redirector"):
        results: dict[str, Any] = {}
        for precision in PRECISIONS:
            if job == "estimator_b":
                results[precision] = estimator_run(strips, precision, device)
            else:
                results[precision] = redirector_run(pairs, precision, device, args.redirector_batch, config)
        fp32, bf16 = results["fp32"], results["bf16"]
        results["speedup_bf16"] = fp32["median_s_per_step"] / bf16["median_s_per_step"]
        report[job] = results
        logging.getLogger(__name__).warning(
            "%s: fp32 %.3f s/step, bf16 %.3f s/step (%.2fx); loss %.4f -> %.4f (fp32) vs %.4f -> %.4f (bf16)",
            job,
            fp32["median_s_per_step"],
            bf16["median_s_per_step"],
            results["speedup_bf16"],
            fp32["first_loss"],
            fp32["last_loss"],
            bf16["first_loss"],
            bf16["last_loss"],
        )
    text = json.dumps(report, indent=2)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
