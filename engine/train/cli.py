"""Command-line entry points of training and evaluation: ``train`` (and its ablation), ``train-estimator``, ``eval``,
``calibrate``.

:func:`register` adds them to the ``mirada`` app. The ablation runner lives here too: it is orchestration
(train every variant for every seed, evaluate, tabulate, plot) over :mod:`engine.train.trainer` and
:mod:`engine.eval.metrics`.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import torch.distributed as dist
import typer

from engine.device import resolve_device
from engine.eval.metrics import EvalConfig, RedirectionMetrics, evaluate_redirector, markdown_table
from engine.train.checkpoint import REDIRECTOR_KIND, load_payload, load_redirector
from engine.train.config import TrainConfig, from_json_dict, to_json_dict
from engine.train.estimator import (
    EstimatorTrainConfig,
    GazeHeadEstimator,
    Judge,
    MirrorAveraged,
    load_estimator,
    train_estimator,
)
from engine.train.trainer import Trainer, TrainSummary, init_distributed

logger = logging.getLogger(__name__)

# The ablation's variants: (name, ght, sg). STED is the baseline without either addition.
VARIANTS: tuple[tuple[str, bool, bool], ...] = (
    ("STED", False, False),
    ("+GHT", True, False),
    ("+SG", False, True),
    ("+GHT+SG", True, True),
)

# One help text for the --precision of every training command (engine.train.precision).
PRECISION_HELP = "fp32, or bf16 (bfloat16 autocast, float32 weights; faster only with bf16 hardware)."


# --- the ablation -------------------------------------------------------------------------------------------


@dataclass
class AblationResult:
    """Metrics and training summaries per variant (one entry per seed), and the files written."""

    metrics: dict[str, list[RedirectionMetrics]]
    summaries: dict[str, list[TrainSummary]]
    table_path: Path
    plot_path: Path
    json_path: Path


def run_ablation(
    base: TrainConfig,
    seeds: int,
    out_dir: Path,
    judge: GazeHeadEstimator,
    eval_config: EvalConfig | None = None,
    estimator: GazeHeadEstimator | None = None,
    progress: bool = True,
) -> AblationResult:
    """Train STED, +GHT, +SG and +GHT+SG with ``base``'s budget for ``seeds`` seeds, evaluate, tabulate, plot.

    Seeds are ``base.seed``, ``base.seed + 1``, ...; each run writes into ``out_dir/<variant>/seed_<k>``. The
    table (``ablation.md``), the plot (``ablation.png``) and all numbers (``ablation.json``) go to ``out_dir``.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be positive, got {seeds}")
    eval_config = eval_config or EvalConfig()
    metrics: dict[str, list[RedirectionMetrics]] = {}
    summaries: dict[str, list[TrainSummary]] = {}
    for name, ght, sg in VARIANTS:
        for k in range(seeds):
            seed = base.seed + k
            run_dir = out_dir / variant_slug(name) / f"seed_{seed}"
            config = replace(base, ght=ght, sg=sg, seed=seed, log_dir=str(run_dir))
            trainer = Trainer(config, estimator, progress=progress)
            summaries.setdefault(name, []).append(trainer.run())
            judge.to(trainer.device)
            result = evaluate_redirector(trainer.model, judge, config.synth, eval_config)
            metrics.setdefault(name, []).append(result)
            logger.info("%s seed %d: %s", name, seed, result.to_dict())

    out_dir.mkdir(parents=True, exist_ok=True)
    table_path = out_dir / "ablation.md"
    table_path.write_text(ablation_header(base, seeds, eval_config, summaries) + markdown_table(metrics))
    json_path = out_dir / "ablation.json"
    json_path.write_text(
        json.dumps(
            {
                "base_config": base.to_dict(),
                "seeds": seeds,
                "metrics": {n: [m.to_dict() for m in ms] for n, ms in metrics.items()},
                "final_losses": {n: [s.final_losses for s in ss] for n, ss in summaries.items()},
                "steps": {n: [s.step for s in ss] for n, ss in summaries.items()},
            },
            indent=2,
        )
    )
    plot_path = out_dir / "ablation.png"
    plot_ablation(metrics, summaries, plot_path)
    return AblationResult(metrics, summaries, table_path, plot_path, json_path)


def ablation_header(
    base: TrainConfig, seeds: int, eval_config: EvalConfig, summaries: dict[str, list[TrainSummary]]
) -> str:
    """The title of ``ablation.md``: the budget each run had and the steps each one reached.

    A wall-clock budget (``max_seconds``) stops runs at different steps (variants differ in cost per step, and a
    shared machine in speed), so the steps actually trained are part of the result.
    """
    budget = f"{base.steps} steps"
    if base.max_seconds is not None:
        budget = f"{base.max_seconds / 60:g} min or {budget}, whichever came first,"
    reached = "; ".join(f"{name} {', '.join(str(s.step) for s in runs)}" for name, runs in summaries.items())
    return (
        f"# Ablation: {budget} at batch {base.batch_size}, {seeds} seed(s) from {base.seed}, "
        f"{eval_config.pairs} {eval_config.split.value} pairs\n\nSteps trained per seed: {reached}.\n\n"
    )


def variant_slug(variant: str) -> str:
    """A directory name for a variant: ``+GHT+SG`` -> ``ght_sg``, ``STED`` -> ``sted``."""
    return "_".join(part for part in variant.lower().split("+") if part)


def plot_ablation(
    metrics: dict[str, list[RedirectionMetrics]], summaries: dict[str, list[TrainSummary]], path: Path
) -> None:
    """Bar charts of the redirection and disentanglement errors (mean ± std over seeds), and loss curves."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    names = list(metrics)
    panels = (
        ("redirection error (°)", ("gaze_redirection_deg", "head_redirection_deg"), ("gaze", "head")),
        ("disentanglement error (°)", ("gaze_to_head_deg", "head_to_gaze_deg"), ("gaze→head", "head→gaze")),
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    width = 0.38
    for ax, (title, keys, labels) in zip(axes[:2], panels, strict=True):
        for j, (key, label) in enumerate(zip(keys, labels, strict=True)):
            values = [[float(getattr(m, key)) for m in metrics[n]] for n in names]
            means = [statistics.fmean(v) for v in values]
            stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            xs = [i + (j - 0.5) * width for i in range(len(names))]
            ax.bar(xs, means, width, yerr=stds, capsize=3, label=label)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title)
        ax.legend()
    ax = axes[2]
    for name in names:
        # The reconstruction term is common to every variant (the totals differ in their terms).
        curves = [{step: v["reconstruction"] for step, v in s.history} for s in summaries[name]]
        # Seeds on a wall-clock budget stop at different steps: average where every seed logged.
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        ax.plot(steps, [statistics.fmean(c[step] for c in curves) for step in steps], label=name)
    ax.set_xlabel("step")
    ax.set_title("training L1 reconstruction (mean over seeds)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- commands -----------------------------------------------------------------------------------------------


def train_command(
    config: Annotated[Path | None, typer.Option(help="TrainConfig JSON (defaults for anything not given).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per step (per rank under torchrun).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (logs, config, checkpoints).")] = None,
    ght: Annotated[bool | None, typer.Option("--ght/--no-ght", help="GHT gaze-consistency loss.")] = None,
    sg: Annotated[bool | None, typer.Option("--sg/--no-sg", help="Structured-gaze loss.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of initialisation and data.")] = None,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (and checkpoint) after this many minutes, even before --steps.")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run of this checkpoint.")] = None,
    estimator: Annotated[Path | None, typer.Option(help="Frozen estimator A checkpoint.")] = None,
    judge: Annotated[Path | None, typer.Option(help="Estimator B checkpoint (ablation evaluation).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Train from this pair cache (mirada synth cache).")] = None,
    init: Annotated[Path | None, typer.Option(help="Start from these redirector weights (fine-tuning).")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    precision: Annotated[
        str | None,
        typer.Option(help=PRECISION_HELP),
    ] = None,
    ablation: Annotated[
        bool, typer.Option("--ablation", help="Train STED, +GHT, +SG, +GHT+SG and compare them.")
    ] = False,
    seeds: Annotated[int, typer.Option(help="Seeds per variant in the ablation.")] = 3,
    eval_pairs: Annotated[int, typer.Option(help="Test pairs per evaluation in the ablation.")] = 1024,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Train the redirector (or, with --ablation, all four variants for several seeds)."""
    overrides: dict[str, Any] = {
        "steps": steps,
        "batch_size": batch_size,
        "device": device,
        "log_dir": None if out is None else str(out),
        "ght": ght,
        "sg": sg,
        "seed": seed,
        "max_seconds": None if max_minutes is None else 60.0 * max_minutes,
        "estimator_checkpoint": None if estimator is None else str(estimator),
        "judge_checkpoint": None if judge is None else str(judge),
        "cache": None if cache is None else str(cache),
        "init_weights": None if init is None else str(init),
        "lr": lr,
        "precision": precision,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        if ablation:
            if resume is not None:
                raise typer.BadParameter("--resume cannot be combined with --ablation")
            base = replace(TrainConfig.load(config) if config else TrainConfig(), **overrides)
            _ablation(base, seeds, EvalConfig(pairs=eval_pairs), progress)
            return
        _train(config, resume, overrides, progress)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def _train(config: Path | None, resume: Path | None, overrides: dict[str, Any], progress: bool) -> None:
    base = TrainConfig.load(config) if config else TrainConfig()
    ctx = init_distributed(str(overrides.get("device", base.device)))
    try:
        if resume is not None:
            trainer = Trainer.from_checkpoint(resume, dist_context=ctx, progress=progress, **overrides)
        else:
            trainer = Trainer(replace(base, **overrides), dist_context=ctx, progress=progress)
        summary = trainer.run()
    finally:
        if ctx.enabled:
            dist.destroy_process_group()
    if ctx.is_main:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in summary.final_losses.items())
        typer.echo(f"{trainer.config.variant}: step {summary.step}, {losses}; checkpoint {summary.checkpoint}")


def _ablation(base: TrainConfig, seeds: int, eval_config: EvalConfig, progress: bool) -> None:
    if init_distributed(base.device).enabled:
        raise ValueError("the ablation runs in a single process; launch it without torchrun")
    if base.judge_checkpoint is None:
        raise ValueError("the ablation needs an evaluation estimator: pass --judge (mirada train-estimator --arch b)")
    judge = load_estimator(base.judge_checkpoint, resolve_device(base.device))
    result = run_ablation(base, seeds, Path(base.log_dir), judge, eval_config, progress=progress)
    typer.echo(result.table_path.read_text())
    typer.echo(f"wrote {result.table_path}, {result.plot_path} and {result.json_path}")


def train_estimator_command(
    config: Annotated[Path | None, typer.Option(help="EstimatorTrainConfig JSON.")] = None,
    arch: Annotated[str | None, typer.Option(help="a (training critic) or b (evaluation judge).")] = None,
    width: Annotated[int | None, typer.Option(help="Channels of the first stage.")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per step (both strips are used).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    out: Annotated[Path | None, typer.Option(help="Checkpoint path.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of initialisation and data.")] = None,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (and checkpoint) after this many minutes, even before --steps.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint at --out.")] = False,
    init: Annotated[
        Path | None, typer.Option(help="Start from this estimator checkpoint's weights (fresh optimiser).")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Adam's learning rate (default 1e-3; from --init about 1e-4, or the first steps undo it)."),
    ] = None,
    lr_schedule: Annotated[
        str | None,
        typer.Option(help="step (decay every lr_decay_steps) or cosine (anneal over --max-minutes)."),
    ] = None,
    cache: Annotated[Path | None, typer.Option(help="Train from this pair cache (mirada synth cache).")] = None,
    mirror_augment: Annotated[
        bool | None,
        typer.Option(help="Mirror half of the training strips left to right (yaws negated)."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(help=PRECISION_HELP),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Train a gaze/head estimator on synthetic strips (A for the training losses, B for evaluation)."""
    try:
        base = EstimatorTrainConfig()
        if config is not None:
            base = from_json_dict(EstimatorTrainConfig, json.loads(config.read_text()))
        arch_fields: dict[str, Any] = {"arch": arch, "width": width}
        est = replace(base.estimator, **{k: v for k, v in arch_fields.items() if v is not None})
        overrides: dict[str, Any] = {
            "steps": steps,
            "batch_size": batch_size,
            "device": device,
            "seed": seed,
            "max_seconds": None if max_minutes is None else 60.0 * max_minutes,
            "cache": None if cache is None else str(cache),
            "init_weights": None if init is None else str(init),
            "lr": lr,
            "lr_schedule": lr_schedule,
            "mirror_augment": mirror_augment,
            "precision": precision,
        }
        cfg = replace(base, estimator=est, **{k: v for k, v in overrides.items() if v is not None})
        if out is not None:
            cfg = replace(cfg, out=str(out))
        elif config is None:
            cfg = replace(cfg, out=f"runs/estimator_{est.arch}.pt")  # A and B must not overwrite each other
        result = train_estimator(cfg, resume=resume, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(
        f"estimator {cfg.estimator.arch}: validation gaze {result.val_gaze_deg:.2f}°, head "
        f"{result.val_head_deg:.2f}°; saved {result.path}"
    )


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="Redirector training checkpoint.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    pairs: Annotated[int, typer.Option(help="Held-out test pairs.")] = 1024,
    batch_size: Annotated[int, typer.Option(help="Pairs per batch.")] = 32,
    judge: Annotated[
        Path | None, typer.Option(help="Estimator B (default: the run's judge, else engine/weights/estimator_b.pt).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    mirror: Annotated[
        bool, typer.Option(help="Score the mirror ensemble (each strip redirected with its mirror image, averaged).")
    ] = False,
    judge_mirror: Annotated[
        bool,
        typer.Option(help="Read every strip with the judge twice, as is and mirrored, averaged (a less noisy judge)."),
    ] = False,
    warp: Annotated[
        bool,
        typer.Option(
            help="Also score what the corrector pastes, the warp alone, against the full output on same-head pairs "
            "(a network-free iris reading and the judge's)."
        ),
    ] = False,
) -> None:
    """Evaluate a trained redirector on test-split pairs with estimator B."""
    try:
        target = resolve_device(device)
        model, config, _ = load_redirector(checkpoint, target)
        judge_path: Path | str | None = judge or config.judge_checkpoint
        if judge_path is None or (judge is None and not Path(judge_path).is_file()):
            # The run's judge may have lived on another machine (the shipped model's did): use the shipped one.
            from engine.weights import DEFAULT_JUDGE

            logger.info("the run's judge %s is not here; using the shipped %s", judge_path, DEFAULT_JUDGE)
            judge_path = str(DEFAULT_JUDGE)
        estimator = load_estimator(judge_path, target)
        judge_model: Judge = MirrorAveraged(estimator) if judge_mirror else estimator
        metrics = evaluate_redirector(
            model, judge_model, config.synth, EvalConfig(pairs=pairs, batch_size=batch_size, mirror=mirror)
        )
        warp_result = None
        if warp:
            from engine.eval.warp_eval import WarpEvalConfig, evaluate_warp

            warp_config = WarpEvalConfig(pairs=pairs, batch_size=min(batch_size, pairs), mirror=mirror)
            warp_result = evaluate_warp(model, judge_model, config.synth, warp_config, progress=False)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        payload: dict[str, Any] = dict(metrics.to_dict())
        if warp_result is not None:
            payload["warp_alone"] = warp_result
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(markdown_table({config.variant: metrics}))
    if warp_result is not None:
        from engine.eval.warp_eval import warp_table

        typer.echo("\n" + warp_table(warp_result))


def calibrate_command(
    checkpoint: Annotated[Path, typer.Argument(help="Redirector or estimator checkpoint to calibrate.")],
    out: Annotated[Path | None, typer.Option(help="Where to write it (default: replace CHECKPOINT).")] = None,
    pairs: Annotated[int, typer.Option(help="Training-split pairs to measure on (two strips each).")] = 8192,
    seed: Annotated[int, typer.Option(help="Sampler seed of those pairs.")] = 101,
    labels: Annotated[
        bool, typer.Option(help="Calibrate the labels (--no-labels: a redirector's move gain only).")
    ] = True,
    gain: Annotated[
        bool, typer.Option(help="For a redirector, also calibrate its move gain against the critic (estimator A).")
    ] = True,
    critic: Annotated[
        Path | None,
        typer.Option(help="Estimator A for the gain (default: the run's, else engine/weights/estimator_a.pt)."),
    ] = None,
    gain_pairs: Annotated[int, typer.Option(help="Training-split pairs to measure the move gain on.")] = 1024,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measurement as JSON.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Make a redirector's gaze and head labels (or an estimator's estimates) unbiased on labelled training
    renders; for a redirector, then scale its moves so that its outputs land on target on average."""
    from engine.train.calibrate import (
        COMPONENTS,
        GAIN_CONFIG,
        CalibrationConfig,
        calibrate_checkpoint,
        calibrate_gain_checkpoint,
    )

    try:
        target = resolve_device(device)
        payload = load_payload(checkpoint)  # its kind and run config; calibrating labels changes neither
        is_redirector = payload.get("kind") == REDIRECTOR_KIND
        if not labels and not (gain and is_redirector):
            raise ValueError("nothing to calibrate: --no-labels leaves only a redirector's move gain")
        result, moved = None, None
        source = checkpoint
        if labels:
            config = CalibrationConfig(pairs=pairs, seed=seed)
            result = calibrate_checkpoint(checkpoint, out, config, target, progress)
            source = out or checkpoint
        if gain and is_redirector:
            critic_path = critic or _run_critic(payload)
            gain_config = replace(GAIN_CONFIG, pairs=gain_pairs)
            moved = calibrate_gain_checkpoint(source, critic_path, out, gain_config, device=target, progress=progress)
        written = out or checkpoint
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps({"labels": to_json_dict(result), "gain": to_json_dict(moved)}, indent=2))
        return
    if result is not None:
        rows = zip(COMPONENTS, result.bias_deg, result.stderr_deg, result.offset_deg, strict=True)
        for name, bias, err, offset in rows:
            typer.echo(f"{name}: bias {bias:+.3f} ± {err:.3f}°, offset now {offset:+.3f}°")
        typer.echo(
            f"error on {result.strips} strips: gaze (open eyes) {result.gaze_error_before_deg:.2f}° -> "
            f"{result.gaze_error_after_deg:.2f}°, head {result.head_error_before_deg:.2f}° -> "
            f"{result.head_error_after_deg:.2f}°"
        )
    if moved is not None:
        rows = zip(COMPONENTS, moved.undershoot_before, moved.undershoot_after, moved.gain, strict=True)
        for name, before, after, k in rows:
            typer.echo(f"{name}: off target by {100 * before:+.1f}% -> {100 * after:+.1f}% of the move, gain {k:.4f}")
        typer.echo(
            f"critic's error on {moved.pairs} pairs: gaze (both eyes open) {moved.critic_gaze_error_before_deg:.2f}° "
            f"-> {moved.critic_gaze_error_after_deg:.2f}°, head {moved.critic_head_error_before_deg:.2f}° -> "
            f"{moved.critic_head_error_after_deg:.2f}°"
        )
    typer.echo(f"wrote {written}")


def _run_critic(payload: dict[str, Any]) -> Path:
    """The training critic (estimator A) of a redirector checkpoint's run, else the shipped one."""
    from engine.weights import DEFAULT_ESTIMATOR_A

    own = TrainConfig.from_dict(payload["config"]).estimator_checkpoint
    if own is not None and Path(own).is_file():
        return Path(own)
    logger.info("the run's critic %s is not here; using the shipped %s", own, DEFAULT_ESTIMATOR_A)
    return DEFAULT_ESTIMATOR_A


def recipe_command(
    out: Annotated[Path, typer.Option(help="Directory of the recipe's cache, runs, weights and summary.")] = Path(
        "runs/recipe"
    ),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    minutes: Annotated[
        float, typer.Option(help="Total training budget, split 15/50/35 % over estimators, ablation, final.")
    ] = 7.0,
    seeds: Annotated[int, typer.Option(help="Seeds per variant in the ablation.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Pairs per step of every redirector run.")] = 64,
    eval_pairs: Annotated[int, typer.Option(help="Held-out test pairs per evaluation.")] = 1024,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "fp32",
) -> None:
    """The whole recipe of the shipped model on a time budget: cache, estimators, ablation, final, export."""
    from engine.train.recipe import RecipeConfig, run_recipe  # imports this module: load it only when used

    if minutes <= 0:
        raise typer.BadParameter("--minutes must be positive")
    seconds = 60.0 * minutes
    config = RecipeConfig(
        out_dir=str(out),
        device=device,
        estimator_seconds=0.15 * seconds,
        ablation_seconds=0.50 * seconds,
        final_seconds=0.35 * seconds,
        seeds=seeds,
        batch_size=batch_size,
        eval_pairs=eval_pairs,
        precision=precision,  # type: ignore[arg-type]  # checked by RecipeConfig
    )
    summary = run_recipe(config)
    typer.echo(summary["ablation_table"])
    typer.echo(f"shipped {summary['shipped']['checkpoint']} and {summary['shipped']['onnx']}; {out / 'summary.json'}")


def register(app: typer.Typer) -> None:
    """Add the ``train``, ``train-estimator``, ``train-recipe``, ``eval`` and ``calibrate`` commands to ``app``."""
    app.command("train")(train_command)
    app.command("train-estimator")(train_estimator_command)
    app.command("train-recipe")(recipe_command)
    app.command("eval")(eval_command)
    app.command("calibrate")(calibrate_command)
