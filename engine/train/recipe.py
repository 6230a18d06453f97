"""The whole training recipe in one call, on a wall-clock budget: the command that made the shipped model.

Stages, in order (each writes into ``out_dir``):

1. **Data**: time the live renderer on the device, then render a pair cache sized to ``cache_seconds`` of it
   (between ``cache_min_pairs`` and ``cache_max_pairs``), so that every later run trains at memory speed.
2. **Estimators**: A (the frozen critic inside the training losses) and B (the evaluation judge, a different
   architecture), trained at the same time in two processes, then calibrated (:mod:`engine.train.calibrate`).
3. **Ablation**: STED, +GHT, +SG and +GHT+SG for ``seeds`` seeds, all at the same time in one process each
   (a 2 M-parameter network at batch 64 leaves most of a large GPU idle; parallel runs fill it), each for
   ``ablation_seconds`` and then scored on the held-out test subjects by B.
4. **Final**: the +GHT+SG run of the first seed continues alone for ``final_seconds`` with the whole device,
   is scored again, slimmed (:func:`engine.train.checkpoint.ship_checkpoint`), its labels calibrated on
   ``calibration_pairs`` training pairs and its move gain on ``gain_pairs`` against A
   (:mod:`engine.train.calibrate`; scored once more after that) and exported to ONNX (checked against torch
   in ONNX Runtime). ``out_dir/ship`` then holds what goes into
   ``engine/weights``: the redirector's checkpoint and ONNX, and both estimators' weights.

Everything measured goes into ``out_dir/summary.json``. The budgets are wall-clock, so the recipe fits a lease
on a shared GPU machine; on a CPU the same call runs, only slower (use small budgets there).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from engine.data.synth.bench import bench
from engine.data.synth.cache import write_cache
from engine.data.synth.sampler import SynthConfig, SynthSampler, compile_by_default
from engine.data.synth.subject import Split
from engine.device import resolve_device
from engine.eval.metrics import EvalConfig, RedirectionMetrics, evaluate_redirector, markdown_table
from engine.model.export import export_onnx, verify_onnx
from engine.train.calibrate import (
    GAIN_CONFIG,
    CalibrationConfig,
    calibrate_checkpoint,
    calibrate_gain_checkpoint,
    calibration_record,
    gain_record,
)
from engine.train.checkpoint import load_redirector, ship_checkpoint
from engine.train.cli import VARIANTS, variant_slug
from engine.train.config import TrainConfig, to_json_dict
from engine.train.estimator import (
    EstimatorConfig,
    EstimatorTrainConfig,
    load_estimator,
    save_estimator,
    train_estimator,
)
from engine.train.precision import Precision, check_precision
from engine.train.trainer import Trainer

logger = logging.getLogger(__name__)

# Steps large enough never to be the limit: every recipe run stops on its time budget.
_UNBOUNDED_STEPS = 10_000_000


@dataclass(frozen=True)
class RecipeConfig:
    """Budgets and sizes of :func:`run_recipe` (seconds are wall-clock per stage)."""

    out_dir: str = "runs/recipe"
    device: str = "auto"
    synth: SynthConfig = field(default_factory=SynthConfig)
    render_batch: int = 512
    cache_seconds: float = 30.0
    cache_min_pairs: int = 4096
    cache_max_pairs: int = 40960
    estimator_seconds: float = 90.0
    estimator_batch: int = 128
    estimator_width: int = 24
    ablation_seconds: float = 200.0
    seeds: int = 2
    batch_size: int = 64
    final_seconds: float = 120.0
    eval_pairs: int = 1024
    calibration_pairs: int = 8192
    gain_pairs: int = 1024
    threads_per_run: int = 2
    # Of every estimator and redirector run: "bf16" trains under bfloat16 autocast (engine.train.precision).
    precision: Precision = "fp32"
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        budgets = (self.cache_seconds, self.estimator_seconds, self.ablation_seconds)
        if min(budgets) <= 0 or self.final_seconds < 0:
            raise ValueError("stage budgets must be positive (final_seconds may be 0 to skip the final stage)")
        if (
            self.seeds < 1
            or self.batch_size < 2
            or self.eval_pairs < 1
            or min(self.calibration_pairs, self.gain_pairs) < 1
        ):
            raise ValueError("need seeds >= 1, batch_size >= 2, and eval_pairs, calibration_pairs and gain_pairs >= 1")
        if not 1 <= self.cache_min_pairs <= self.cache_max_pairs:
            raise ValueError("need 1 <= cache_min_pairs <= cache_max_pairs")


def _stamp(summary: dict[str, Any], out_dir: Path) -> None:
    """Write the summary so far (a run cut short still leaves what it measured)."""
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def run_recipe(config: RecipeConfig) -> dict[str, Any]:
    """Run every stage (see the module docstring) and return the summary that is also written as JSON."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    _fast_cuda()
    started = time.monotonic()
    summary: dict[str, Any] = {
        "recipe": to_json_dict(config),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    _stamp(summary, out)

    # 1. data
    compiled = compile_by_default(device)
    speed = bench(config.synth, str(device), batch_size=config.render_batch, batches=3, compiled=compiled)
    rate = speed.strips_per_second
    summary["renderer_strips_per_s"] = {"batch_pairs": config.render_batch, "strips_per_s": rate}
    logger.info("renderer on %s: %.0f strips/s", device, rate)
    pairs = int(min(max(rate * config.cache_seconds / 2, config.cache_min_pairs), config.cache_max_pairs))
    cache = out / "pairs_train.h5"
    t0 = time.monotonic()
    sampler = SynthSampler(
        config.synth, Split.TRAIN, seed=12345, batch_size=config.render_batch, device=device, compiled=compiled
    )
    write_cache(sampler, cache, pairs, progress=False)
    summary["cache"] = {"pairs": pairs, "seconds": time.monotonic() - t0}
    _stamp(summary, out)

    # 2. estimators A and B, side by side
    est_paths = {arch: out / f"estimator_{arch}.pt" for arch in ("a", "b")}
    jobs = [
        (
            _estimator_job,
            (
                EstimatorTrainConfig(
                    estimator=EstimatorConfig(arch=arch, width=config.estimator_width),  # type: ignore[arg-type]
                    steps=_UNBOUNDED_STEPS,
                    batch_size=config.estimator_batch,
                    lr_schedule="cosine",  # annealed over the stage's budget
                    seed=i,
                    device=str(device),
                    out=str(path),
                    checkpoint_every=_UNBOUNDED_STEPS,
                    max_seconds=config.estimator_seconds,
                    synth=config.synth,
                    cache=str(cache),
                    precision=config.precision,
                ),
                config.threads_per_run,
            ),
        )
        for i, (arch, path) in enumerate(est_paths.items())
    ]
    summary["estimators"] = dict(zip(est_paths, _run_parallel(jobs), strict=True))
    ship = out / "ship"
    calibration_config = CalibrationConfig(pairs=config.calibration_pairs)
    for arch, path in est_paths.items():
        # Unbiased before use: a biased critic makes every redirected gaze overshoot by its bias.
        measured = calibrate_checkpoint(path, config=calibration_config, device=device, progress=False)
        record = calibration_record(calibration_config, measured)
        summary["estimators"][arch]["label_calibration"] = record
        # Weights and config only (the training checkpoint also holds Adam's moments, twice the weights).
        save_estimator(load_estimator(path), ship / f"estimator_{arch}.pt", {"label_calibration": record})
    _stamp(summary, out)

    # 3. the ablation, every run at once
    base = replace(
        config.train,
        steps=_UNBOUNDED_STEPS,
        batch_size=config.batch_size,
        device=str(device),
        max_seconds=config.ablation_seconds,
        checkpoint_every=_UNBOUNDED_STEPS,
        synth=config.synth,
        cache=str(cache),
        estimator_checkpoint=str(est_paths["a"]),
        judge_checkpoint=str(est_paths["b"]),
        precision=config.precision,
    )
    runs = [
        (
            name,
            replace(
                base, ght=ght, sg=sg, seed=seed, log_dir=str(out / "ablation" / variant_slug(name) / f"seed_{seed}")
            ),
        )
        for name, ght, sg in VARIANTS
        for seed in range(config.train.seed, config.train.seed + config.seeds)
    ]
    results = _run_parallel([(_redirector_job, (cfg, config.eval_pairs, config.threads_per_run)) for _, cfg in runs])
    ablation: dict[str, list[dict[str, Any]]] = {}
    for (name, _), result in zip(runs, results, strict=True):
        ablation.setdefault(name, []).append(result)
    summary["ablation"] = ablation
    summary["ablation_table"] = _table(ablation)
    _stamp(summary, out)

    # 4. the final model: +GHT+SG, first seed, continued alone
    first = next(cfg for name, cfg in runs if name == "+GHT+SG")
    final_ckpt = Path(first.log_dir) / "last.pt"
    if config.final_seconds > 0:
        final_dir = out / "final"
        result = _continue_job(final_ckpt, final_dir, config.final_seconds, config.eval_pairs)
        summary["final"] = result
        final_ckpt = final_dir / "last.pt"
    shipped = ship_checkpoint(final_ckpt, ship / "redirector.pt")
    calibration = calibrate_checkpoint(shipped, config=calibration_config, device=device, progress=False)
    summary["label_calibration"] = calibration_record(calibration_config, calibration)
    gain_config = replace(GAIN_CONFIG, pairs=config.gain_pairs)
    try:
        gain = calibrate_gain_checkpoint(shipped, est_paths["a"], config=gain_config, device=device, progress=False)
        summary["gain_calibration"] = gain_record(gain_config, est_paths["a"], gain)
    except ValueError as exc:
        # a model (or critic) too little trained to follow its targets: ship it with gain one, not nothing
        logger.warning("move gain not calibrated: %s", exc)
        summary["gain_calibration"] = {"config": to_json_dict(gain_config), "skipped": str(exc)}
    model, _, _ = load_redirector(shipped, device)
    judge = load_estimator(est_paths["b"], device)
    calibrated = evaluate_redirector(model, judge, config.synth, EvalConfig(pairs=config.eval_pairs))
    summary["calibrated_metrics"] = calibrated.to_dict()
    # and as the mirror ensemble (mirada correct's default, mirada serve --mirror) on the same pairs
    mirror = EvalConfig(pairs=config.eval_pairs, mirror=True)
    summary["mirror_metrics"] = evaluate_redirector(model, judge, config.synth, mirror).to_dict()
    model.cpu()
    onnx_path = export_onnx(model, ship / "redirector.onnx", config.synth.geometry)
    summary["onnx_max_abs_diff"] = verify_onnx(model, onnx_path, config.synth.geometry)
    summary["shipped"] = {
        "checkpoint": str(shipped),
        "checkpoint_mb": shipped.stat().st_size / 2**20,
        "onnx": str(onnx_path),
        "onnx_mb": onnx_path.stat().st_size / 2**20,
    }
    summary["total_seconds"] = time.monotonic() - started
    _stamp(summary, out)
    return summary


def _table(ablation: dict[str, list[dict[str, Any]]]) -> str:
    """The ablation's markdown table (mean ± std over seeds)."""
    rows = {name: [RedirectionMetrics(**r["metrics"]) for r in runs] for name, runs in ablation.items()}
    return markdown_table(rows)


# --- the jobs (each runs in its own process) ---------------------------------------------------------------


def _run_parallel(jobs: list[tuple[Any, tuple[Any, ...]]]) -> list[dict[str, Any]]:
    """Run ``(function, args)`` jobs in parallel spawned processes; their JSON results in order.

    Each job writes its result to a file (not a pipe), so a crash in one is reported with its traceback and
    does not lose the others' results.
    """
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"mirada-recipe-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir(parents=True)
    procs = []
    for i, (fn, args) in enumerate(jobs):
        proc = ctx.Process(target=_job_main, args=(fn, args, str(tmp / f"{i}.json")), daemon=False)
        proc.start()
        procs.append(proc)
    for proc in procs:
        proc.join()
    results = []
    for i, proc in enumerate(procs):
        path = tmp / f"{i}.json"
        result = json.loads(path.read_text()) if path.is_file() else {"error": f"exit code {proc.exitcode}"}
        results.append(result)
    shutil.rmtree(tmp, ignore_errors=True)
    failed = [r["error"] for r in results if "error" in r]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} parallel job(s) failed; first: {failed[0]}")
    return results


def _job_main(fn: Any, args: tuple[Any, ...], result_path: str) -> None:
    """Child-process entry: run ``fn(*args)`` and write its result (or the error) as JSON."""
    import traceback

    logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(name)s: %(message)s")
    try:
        result = fn(*args)
    except Exception as exc:  # reported to the parent, which raises
        result = {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
    Path(result_path).write_text(json.dumps(result, default=str))


def _estimator_job(config: EstimatorTrainConfig, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    _fast_cuda()
    t0 = time.monotonic()
    result = train_estimator(config, progress=False)
    return {
        "arch": config.estimator.arch,
        "steps": len(result.losses),
        "seconds": time.monotonic() - t0,
        "val_gaze_deg": result.val_gaze_deg,
        "val_head_deg": result.val_head_deg,
        "path": str(result.path),
    }


def _redirector_job(config: TrainConfig, eval_pairs: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    _fast_cuda()
    t0 = time.monotonic()
    trainer = Trainer(config, progress=False)
    summary = trainer.run()
    seconds = time.monotonic() - t0
    metrics = _score(trainer, eval_pairs)
    return {
        "variant": config.variant,
        "seed": config.seed,
        "steps": summary.step,
        "train_seconds": seconds,
        "final_losses": summary.final_losses,
        "history": summary.history,
        "metrics": metrics.to_dict(),
        "checkpoint": str(summary.checkpoint),
    }


def _continue_job(checkpoint: Path, out_dir: Path, seconds: float, eval_pairs: int) -> dict[str, Any]:
    """Continue a run in this process (it has the device to itself now) and score it."""
    t0 = time.monotonic()
    trainer = Trainer.from_checkpoint(checkpoint, progress=False, log_dir=str(out_dir), max_seconds=seconds)
    start_step = trainer.step
    summary = trainer.run()
    metrics = _score(trainer, eval_pairs)
    return {
        "from_step": start_step,
        "steps": summary.step,
        "train_seconds": time.monotonic() - t0,
        "final_losses": summary.final_losses,
        "metrics": metrics.to_dict(),
    }


def _score(trainer: Trainer, eval_pairs: int) -> RedirectionMetrics:
    """The trained model of ``trainer`` scored by its run's judge on held-out test pairs."""
    judge_path = trainer.config.judge_checkpoint
    if judge_path is None:
        raise ValueError("the recipe's runs need a judge")
    judge = load_estimator(judge_path, trainer.device)
    return evaluate_redirector(trainer.model, judge, trainer.config.synth, EvalConfig(pairs=eval_pairs))


def _fast_cuda() -> None:
    """TF32 convolutions and matrix products, cuDNN autotuning: about twice as fast, far below our error budgets."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


if __name__ == "__main__":
    # ``python -m engine.train.recipe --minutes 7`` where the ``mirada`` script is not installed (GPU machines).
    import typer

    from engine.train.cli import recipe_command

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.run(recipe_command)
