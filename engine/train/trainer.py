"""The redirector's training loop: losses of one step, optimisation, logging, checkpoints, DDP.

Everything about training lives here and in :mod:`engine.train.losses`; the model only encodes, rotates and
decodes. One step on a :class:`PairBatch` (source ``s``, target ``t``, same subject, true labels known):

* STED: encode both; redirect ``s`` to the target's *true* gaze and head (rotating from the encoder's
  pseudo-labels of ``s``) and compare with the target render (L1, and the frozen estimator A's features as
  the perceptual loss); A's gaze and head of the output must be the target labels (redirection); the
  pseudo-labels of both strips must be the true labels; the source and target embeddings must agree once
  rotated to a common label (embedding consistency); and redirecting only the gaze must leave A's head
  estimate of the source unchanged, redirecting only the head its gaze estimate (disentanglement).
* +GHT: the gaze-consistency loss of an intermediate feature between the source and target embeddings.
* +SG: the structured-gaze metric loss on the source's factors.

GHT's α (Park et al. 2023) is per sample and updated from that sample's consistency in the previous epoch.
Our pairs are drawn fresh every step, so there is no "same sample next time": α is kept as a running mean of
the per-sample updates :func:`engine.model.ght.next_alpha` (momentum ``ght_alpha_momentum``, starting at
``ght_alpha_init``), i.e. the curriculum follows how hard the pairs are *for the current model* on average. A
per-batch-position state would tie α to unrelated samples that merely share a position.

Determinism: the weights are initialised from ``config.seed``; batch ``k`` of rank ``r`` (of ``W``) is sampler
batch ``k·W + r``, so ranks never share a batch and a run's data depends only on the seed and the world size;
the SG loss draws from its own generator, saved with the checkpoint. On the CPU a resumed run reproduces the
uninterrupted one exactly; on CUDA up to non-deterministic kernels.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from engine.data.batch import PairBatch
from engine.data.synth import Split
from engine.data.synth.cache import pair_source
from engine.device import resolve_device
from engine.model import Factors, Redirector
from engine.model.ght import ght_consistency, ght_interpolate, next_alpha
from engine.model.warp import warp
from engine.train.checkpoint import (
    FORMAT_VERSION,
    REDIRECTOR_KIND,
    capture_rng_state,
    code_version,
    load_payload,
    require_kind,
    restore_rng_state,
    save_payload,
)
from engine.train.config import TrainConfig
from engine.train.estimator import GazeHeadEstimator, feature_distance, freeze, load_estimator
from engine.train.losses import (
    StructuredGazeLoss,
    angular_loss,
    embedding_consistency_loss,
    eye_cells,
    fold_loss,
    pseudo_label_loss,
    pupil_flow_loss,
    reconstruction_l1,
)
from engine.train.precision import autocast, warn_if_emulated

logger = logging.getLogger(__name__)

StepLosses = dict[str, Tensor]


# --- distributed --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly single-process) run; ``enabled`` means wrap the model in DDP."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process logs and writes checkpoints (rank 0)."""
        return self.rank == 0


def init_distributed(device: str) -> DistContext:
    """Join the process group when launched by ``torchrun`` with ``WORLD_SIZE`` > 1; else a single process.

    NCCL on GPUs, gloo on CPUs. Each rank uses its ``LOCAL_RANK``-th GPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    logger.info("rank %d of %d on %s", rank, world, target)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, enabled=True)


# --- the losses of one step ---------------------------------------------------------------------------------


def _cat_factors(parts: list[Factors]) -> Factors:
    """Factors of several batches stacked along the batch axis (to decode them in one call)."""
    return Factors(
        appearance=torch.cat([p.appearance for p in parts]),
        gaze_emb=torch.cat([p.gaze_emb for p in parts]),
        head_emb=torch.cat([p.head_emb for p in parts]),
        gaze_pl=torch.cat([p.gaze_pl for p in parts]),
        head_pl=torch.cat([p.head_pl for p in parts]),
        skip=torch.cat([p.skip for p in parts]),
    )


class RedirectorLosses(nn.Module):
    """Every loss term of one training step as one module.

    It is what DDP wraps: DDP synchronises the gradients of the parameters used in its ``forward``, so the
    whole step (several encodes and decodes, the SG projection) has to happen inside one forward call.
    ``estimator`` is frozen: gradients flow through it to the redirector's output, never into it.
    """

    def __init__(self, redirector: Redirector, estimator: GazeHeadEstimator, config: TrainConfig) -> None:
        super().__init__()
        self.redirector = redirector
        self.estimator = estimator
        freeze(self.estimator)
        self.config = config
        self.sg_loss: StructuredGazeLoss | None = None
        if config.sg:
            model = config.model
            self.sg_loss = StructuredGazeLoss(model.appearance_dim, model.embedding_dim, config.sg_margin)

    def train(self, mode: bool = True) -> Self:
        """Switch the redirector's mode; the frozen estimator always stays in eval mode."""
        super().train(mode)
        self.estimator.eval()
        return self

    def forward(self, batch: PairBatch, alpha: Tensor, generator: torch.Generator) -> tuple[StepLosses, Tensor]:
        """Unweighted loss terms and their weighted ``total``, and the per-sample GHT inconsistency (B).

        ``alpha`` is GHT's interpolation weight (a scalar tensor for the whole batch); the inconsistency is
        zeros when GHT is off. ``generator`` drives the SG loss's random hard samples.
        """
        cfg, model = self.config, self.redirector
        s, t = batch.source, batch.target
        n = len(s)
        fs, ft = model.encode(s.image), model.encode(t.image)
        terms: StepLosses = {
            "pseudo_label": pseudo_label_loss(fs.gaze_pl, fs.head_pl, s.gaze, s.head)
            + pseudo_label_loss(ft.gaze_pl, ft.head_pl, t.gaze, t.head),
            "embedding_consistency": embedding_consistency_loss(fs.gaze_emb, fs.gaze_pl, ft.gaze_emb, ft.gaze_pl)
            + embedding_consistency_loss(fs.head_emb, fs.head_pl, ft.head_emb, ft.head_pl),
        }

        # Three redirections of the source, decoded in one call: to the target's gaze and head (compared with
        # the target render), to its gaze only and to its head only (for disentanglement).
        moved = _cat_factors(
            [
                model.redirect(fs, t.gaze, t.head),
                model.redirect(fs, t.gaze, fs.head_pl),
                model.redirect(fs, fs.gaze_pl, t.head),
            ]
        )
        decoded = model.decode(moved, s.image.repeat(3, 1, 1, 1))
        outputs = decoded.strip_out  # -> 3B x 3 x H x W
        full = outputs[:n]
        terms["reconstruction"] = reconstruction_l1(full, t.image)
        if cfg.weights.warp > 0:
            # The corrector pastes the warp alone on real frames (the residual is synthetic-looking there), so
            # the warp itself must carry the move: the source warped by the flow, without the residual, is
            # compared with the target render too.
            warped = warp(s.image, decoded.flow[:n], (cfg.model.height, cfg.model.width))  # -> B x 3 x H x W
            terms["warp"] = reconstruction_l1(warped, t.image)
        if cfg.weights.pupil > 0:
            if s.pupil is None or t.pupil is None:
                raise ValueError(
                    "the pupil loss needs pupil positions: train from the live sampler or a pair cache written "
                    "since session 16 (mirada synth cache), or set its weight to 0"
                )
            # the flow of the redirection to the target's gaze and head, as for the warp term
            terms["pupil"] = pupil_flow_loss(decoded.flow[:n], s.pupil, t.pupil, ~(s.closed | t.closed))
        if cfg.weights.fold > 0:
            # what the corrector pastes must not fold: only the gaze redirection's flow, the one pasted
            terms["fold"] = fold_loss(decoded.flow[:n])
        if cfg.weights.eye_fold > 0:
            # the output pixels are the target's, so its eyeball mask says where the pasted warp shows an eye
            terms["eye_fold"] = fold_loss(decoded.flow[:n], weight=eye_cells(t.mask))

        with torch.no_grad():
            reference, reference_features = self.estimator.forward_with_features(torch.cat((s.image, t.image)))
        estimate, features = self.estimator.forward_with_features(outputs)
        terms["perceptual"] = feature_distance([f[:n] for f in features], [f[n:] for f in reference_features])
        terms["redirection"] = angular_loss(estimate.gaze[:n], t.gaze) + angular_loss(estimate.head[:n], t.head)
        # Against the estimator's own reading of the source, so that its bias cancels out.
        terms["disentanglement"] = angular_loss(estimate.head[n : 2 * n], reference.head[:n]) + angular_loss(
            estimate.gaze[2 * n :], reference.gaze[:n]
        )

        inconsistency = torch.zeros(n, device=s.image.device)
        if cfg.ght:
            z_tr, g_tr = ght_interpolate(fs.gaze_emb, ft.gaze_emb, fs.gaze_pl, ft.gaze_pl, alpha.expand(n))
            inconsistency = ght_consistency(fs.gaze_emb, fs.gaze_pl, z_tr, g_tr, t.gaze)
            terms["ght"] = inconsistency.mean()
        if self.sg_loss is not None:
            terms["sg"] = self.sg_loss(fs.gaze_emb, fs.head_emb, fs.appearance, generator)

        weights = cfg.weights
        # float32 terms: under bf16 autocast some come out in bfloat16, and the sum (and the logs) should not.
        terms = {name: value.float() for name, value in terms.items()}
        total = torch.stack([getattr(weights, name) * value for name, value in terms.items()]).sum()
        terms["total"] = total
        return terms, inconsistency.float()


def widen_flow_bound(state: dict[str, Tensor], old_px: float, new_px: float) -> dict[str, Tensor]:
    """Redirector weights trained with the flow bounded at ``old_px`` (``max_flow_px``), for a model bounded at
    ``new_px``: the flow head's weights and bias are scaled by ``old_px / new_px``, so that
    ``new_px tanh(x old/new) ~ old_px tanh(x)`` where the flow is small (most of the strip) and fine-tuning
    starts from (about) the same warp, with room for larger moves."""
    if old_px <= 0 or new_px <= 0:
        raise ValueError(f"flow bounds must be positive, got {old_px} and {new_px}")
    ratio = old_px / new_px
    scaled = dict(state)
    for name in ("decoder.flow_head.weight", "decoder.flow_head.bias"):
        if name not in scaled:
            raise KeyError(f"{name} missing from the redirector's weights")
        scaled[name] = scaled[name] * ratio
    logger.info("flow bound %.1f -> %.1f px: flow head scaled by %.3f", old_px, new_px, ratio)
    return scaled


# --- the trainer --------------------------------------------------------------------------------------------


@dataclass
class TrainSummary:
    """What a :meth:`Trainer.run` did: the step reached, the last logged losses, the loss history."""

    step: int
    final_losses: dict[str, float]
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    checkpoint: Path | None = None


class Trainer:
    """Trains a :class:`Redirector` as configured by a :class:`TrainConfig`.

    ``estimator`` is the frozen estimator A (loaded from ``config.estimator_checkpoint`` when not given).
    ``dist_context`` comes from :func:`init_distributed` (default: a single process). Only rank 0 shows a
    progress bar, writes TensorBoard logs and checkpoints, all into ``config.log_dir``.
    """

    def __init__(
        self,
        config: TrainConfig,
        estimator: GazeHeadEstimator | None = None,
        dist_context: DistContext | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.dist = dist_context or DistContext()
        self.device = resolve_device(config.device, self.dist.local_rank)
        warn_if_emulated(self.device, config.precision)
        self.progress = progress and self.dist.is_main
        self.run_dir = Path(config.log_dir)
        if estimator is None:
            if config.estimator_checkpoint is None:
                raise ValueError(
                    "training needs the frozen estimator A: train one (mirada train-estimator) and set "
                    "estimator_checkpoint, or pass an estimator"
                )
            estimator = load_estimator(config.estimator_checkpoint, self.device)

        # The same seed on every rank gives the same initial weights (DDP would broadcast rank 0's anyway).
        torch.manual_seed(config.seed)
        self.model = Redirector(config.model).to(self.device)
        if config.init_weights is not None:
            init = load_payload(config.init_weights)
            require_kind(init, REDIRECTOR_KIND, config.init_weights)
            state = dict(init["model"])
            trained_bound = TrainConfig.from_dict(init["config"]).model.max_flow_px
            if trained_bound != config.model.max_flow_px:
                state = widen_flow_bound(state, trained_bound, config.model.max_flow_px)
            self.model.load_state_dict(state)
            logger.info("initialised the redirector from %s", config.init_weights)
        self.losses = RedirectorLosses(self.model, estimator.to(self.device), config).to(self.device)
        self.step_module: nn.Module = self.losses
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_module = DistributedDataParallel(self.losses, device_ids=device_ids)
        trained = [p for p in self.losses.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trained, lr=config.lr, betas=config.betas)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.lr_decay_steps, config.lr_decay)
        self.sampler = pair_source(config.synth, Split.TRAIN, config.seed, config.batch_size, self.device, config.cache)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed * 1_000_003 + self.dist.rank)
        self.alpha = torch.tensor(config.ght_alpha_init, device=self.device)
        self.step = 0

    # --- one step -------------------------------------------------------------------------------------------

    def train_step(self, batch: PairBatch) -> StepLosses:
        """One optimiser step on ``batch``; returns the detached loss terms (and ``total``) of the step."""
        batch = batch.to(self.device)
        self.step_module.train()
        with autocast(self.device, self.config.precision):
            terms, inconsistency = self.step_module(batch, self.alpha, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.config.ght:
            self._update_alpha(inconsistency)
        self.step += 1
        return {name: value.detach() for name, value in terms.items()}

    def _update_alpha(self, inconsistency: Tensor) -> None:
        """Running mean of the per-sample hardness-aware updates (averaged over ranks, to stay in step)."""
        batch_alpha = next_alpha(inconsistency).mean()
        if self.dist.enabled:
            dist.all_reduce(batch_alpha)
            batch_alpha = batch_alpha / self.dist.world_size
        m = self.config.ght_alpha_momentum
        self.alpha = m * self.alpha + (1.0 - m) * batch_alpha

    def batch_index(self, step: int) -> int:
        """The sampler batch this rank trains on at ``step``."""
        return step * self.dist.world_size + self.dist.rank

    # --- the loop -------------------------------------------------------------------------------------------

    def run(self) -> TrainSummary:
        """Train from the current step to ``config.steps``, logging and checkpointing on the way."""
        cfg = self.config
        writer = self._open_writer()
        summary = TrainSummary(step=self.step, final_losses={})
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress, desc=cfg.variant)
        deadline = None if cfg.max_seconds is None else time.monotonic() + cfg.max_seconds
        try:
            while self.step < cfg.steps:
                terms = self.train_step(self.sampler.pairs(self.batch_index(self.step)))
                bar.update(1)
                # Every rank stops at the same step: rank 0's clock decides under DDP.
                last = self.step == cfg.steps or self._out_of_time(deadline)
                if self.step % cfg.log_every == 0 or last:
                    values = {name: float(value) for name, value in terms.items()}
                    summary.final_losses = values
                    summary.history.append((self.step, values))
                    bar.set_postfix(loss=f"{values['total']:.4g}")
                    self._log(writer, values)
                if self.step % cfg.checkpoint_every == 0 or last:
                    summary.checkpoint = self.save_checkpoint()
                if last:
                    break
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        summary.step = self.step
        return summary

    def _out_of_time(self, deadline: float | None) -> bool:
        """Whether the wall-clock budget is spent (rank 0 decides and tells the others)."""
        if deadline is None:
            return False
        over = time.monotonic() >= deadline
        if not self.dist.enabled:
            return over
        if self.step % self.config.log_every:
            return False  # under DDP only at log steps: each ask is a broadcast and a host sync
        flag = torch.tensor(float(over), device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def _open_writer(self) -> Any:
        """A TensorBoard writer on rank 0 (None elsewhere); also records the run's config."""
        if not self.dist.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter  # slow import, only where it is used

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.save(self.run_dir / "config.json")
        # purge_step drops events a crashed run logged after the checkpoint it is resumed from.
        return SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step or None)

    def _log(self, writer: Any, values: dict[str, float]) -> None:
        if writer is None:
            return
        for name, value in values.items():
            writer.add_scalar(f"loss/{name}", value, self.step)
        writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
        if self.config.ght:
            writer.add_scalar("train/ght_alpha", float(self.alpha), self.step)
        logger.debug("step %d: %s", self.step, values)

    # --- checkpoints ----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: weights, optimiser, schedule, α, RNG, config."""
        return {
            "kind": REDIRECTOR_KIND,
            "format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "code_version": code_version(),
            "step": self.step,
            "model": self.model.state_dict(),
            "sg": None if self.losses.sg_loss is None else self.losses.sg_loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "alpha": self.alpha.detach().cpu(),
            "rng": capture_rng_state(self.generator),
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (of a run with the same variant and architecture)."""
        self.model.load_state_dict(payload["model"])
        if self.losses.sg_loss is not None:
            if payload["sg"] is None:
                raise ValueError("the checkpoint was trained without the SG loss; cannot resume with it")
            self.losses.sg_loss.load_state_dict(payload["sg"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.alpha = payload["alpha"].to(self.device)
        restore_rng_state(payload["rng"], self.generator)
        self.step = int(payload["step"])

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_NNNNNNN.pt`` and ``last.pt`` in the run directory (rank 0 only)."""
        if not self.dist.is_main:
            return None
        path = self.run_dir / "checkpoints" / f"step_{self.step:07d}.pt"
        save_payload(self.state_dict(), path)
        last = self.run_dir / "last.pt"
        tmp = last.with_name(last.name + ".tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, last)
        logger.info("checkpoint %s", path)
        return path

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        estimator: GazeHeadEstimator | None = None,
        dist_context: DistContext | None = None,
        progress: bool = True,
        **overrides: Any,
    ) -> Trainer:
        """A trainer that continues the run of checkpoint ``path``.

        ``overrides`` replace config fields (e.g. ``steps`` to train longer, ``device``, ``log_dir``).
        """
        payload = load_payload(path)
        require_kind(payload, REDIRECTOR_KIND, path)
        config = replace(TrainConfig.from_dict(payload["config"]), **overrides)
        trainer = cls(config, estimator, dist_context, progress)
        trainer.load_state_dict(payload)
        logger.info("resumed %s at step %d", path, trainer.step)
        return trainer
