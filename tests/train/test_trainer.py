"""The trainer: loss goes down, checkpoints resume exactly, runs leave config/logs/checkpoints, DDP wraps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from engine.data.synth import Split, SynthSampler
from engine.data.synth.cache import CachedPairs, write_cache
from engine.train.checkpoint import load_payload, load_redirector
from engine.train.config import TrainConfig
from engine.train.trainer import DistContext, Trainer
from tests.train.helpers import TINY_SYNTH, tiny_config, tiny_estimator


def test_steps_on_a_fixed_batch_reduce_the_total_loss(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(tmp_path, seed=0), tiny_estimator(), progress=False)
    batch = SynthSampler(TINY_SYNTH, Split.TRAIN, seed=0, batch_size=4).pairs(0)
    totals = [float(trainer.train_step(batch)["total"]) for _ in range(8)]
    assert all(torch.isfinite(torch.tensor(totals)))
    assert max(totals[-2:]) < 0.9 * totals[0], totals
    assert trainer.step == 8
    assert 0.0 <= float(trainer.alpha) <= 1.0


def test_bf16_steps_reduce_the_loss_like_fp32_and_keep_float32_weights(tmp_path: Path) -> None:
    batch = SynthSampler(TINY_SYNTH, Split.TRAIN, seed=0, batch_size=4).pairs(0)
    totals = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(tiny_config(tmp_path / precision, precision=precision), tiny_estimator(), progress=False)
        steps = [trainer.train_step(batch) for _ in range(8)]
        assert all(value.dtype == torch.float32 for value in steps[-1].values())
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        totals[precision] = [float(s["total"]) for s in steps]
    fp32, bf16 = totals["fp32"], totals["bf16"]
    # The same first step up to bfloat16 rounding, and the same descent.
    assert bf16[0] == pytest.approx(fp32[0], rel=0.02)
    assert max(bf16[-2:]) < 0.9 * bf16[0], bf16
    assert max(bf16[-2:]) == pytest.approx(max(fp32[-2:]), rel=0.15)
    with pytest.raises(ValueError, match="precision"):
        tiny_config(tmp_path, precision="fp16")


def test_resuming_a_checkpoint_reproduces_the_next_step(tmp_path: Path) -> None:
    estimator = tiny_estimator()
    config = tiny_config(tmp_path / "run", steps=3, checkpoint_every=2)
    summary = Trainer(config, estimator, progress=False).run()
    assert summary.step == 3
    uninterrupted = dict(summary.history)[3]

    resumed = Trainer.from_checkpoint(tmp_path / "run" / "checkpoints" / "step_0000002.pt", estimator, progress=False)
    assert resumed.step == 2
    again = resumed.run()
    assert dict(again.history)[3] == uninterrupted  # bit for bit on the CPU


def test_a_run_writes_config_logs_and_checkpoints(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, steps=2, ght=False, sg=False)
    summary = Trainer(config, tiny_estimator(), progress=False).run()
    assert set(summary.final_losses) == {
        "pseudo_label",
        "embedding_consistency",
        "reconstruction",
        "perceptual",
        "redirection",
        "disentanglement",
        "total",
    }  # the STED baseline: no GHT or SG terms
    assert TrainConfig.load(tmp_path / "config.json") == config
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    payload = load_payload(tmp_path / "last.pt")
    assert payload["step"] == 2
    assert payload["code_version"]
    assert TrainConfig.from_dict(payload["config"]) == config
    model, loaded, _ = load_redirector(tmp_path / "last.pt")
    assert loaded == config
    assert not model.training


def test_training_needs_an_estimator(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="estimator"):
        Trainer(tiny_config(tmp_path), progress=False)


def test_ddp_wrapping_on_a_single_gloo_process(tmp_path: Path) -> None:
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed is unavailable or already in use")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        trainer = Trainer(tiny_config(tmp_path, steps=2), tiny_estimator(), DistContext(enabled=True), progress=False)
        summary = trainer.run()
    finally:
        dist.destroy_process_group()
    assert isinstance(trainer.step_module, torch.nn.parallel.DistributedDataParallel)
    assert summary.step == 2  # a second step fails if DDP saw parameters the loss does not use
    assert torch.isfinite(torch.tensor(summary.final_losses["total"]))


def test_training_can_read_a_pair_cache(tmp_path: Path) -> None:
    cache = tmp_path / "pairs.h5"
    write_cache(SynthSampler(TINY_SYNTH, Split.TRAIN, seed=2, batch_size=4), cache, pairs=6, progress=False)
    trainer = Trainer(tiny_config(tmp_path / "run", steps=2, cache=str(cache)), tiny_estimator(), progress=False)
    assert isinstance(trainer.sampler, CachedPairs)
    summary = trainer.run()
    assert summary.step == 2
    assert torch.isfinite(torch.tensor(summary.final_losses["total"]))
